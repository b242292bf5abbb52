package testutil

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"
)

// KeyType is the kind of key TLS test certificates are made with.
type KeyType int

const (
	ECDSA KeyType = iota // P-256
	RSA                  // 2048 bits
)

// Cert is a TLS test certificate and its private key.
type Cert struct {
	Cert *x509.Certificate
	Key  crypto.Signer // *ecdsa.PrivateKey or *rsa.PrivateKey
}

// TestCA is a private certificate authority for tests; its certificates
// are valid from an hour ago to an hour from now, for both server and
// client authentication.
type TestCA struct {
	Cert
	keyType KeyType
}

var certSerial atomic.Int64

// NewTestCA makes a self-signed CA named cn whose keys (its own and those
// of the certificates it issues) are of type kt.
func NewTestCA(t testing.TB, cn string, kt KeyType) *TestCA {
	t.Helper()
	ca := &TestCA{keyType: kt}
	ca.Cert = *ca.make(t, cn, nil, true)
	return ca
}

// Issue makes a certificate for cn signed by the CA. Each of names that is
// an IP address goes into its IP addresses, each other one into its DNS
// names; cn itself too when it is an IP address.
func (ca *TestCA) Issue(t testing.TB, cn string, names ...string) *Cert {
	t.Helper()
	return ca.make(t, cn, names, false)
}

func (ca *TestCA) make(t testing.TB, cn string, names []string, isCA bool) *Cert {
	t.Helper()
	var key crypto.Signer
	var err error
	usage := x509.KeyUsageDigitalSignature
	switch ca.keyType {
	case RSA:
		key, err = rsa.GenerateKey(rand.Reader, 2048)
		usage |= x509.KeyUsageKeyEncipherment
	default:
		key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	}
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano() + certSerial.Add(1)),
		Subject:               pkix.Name{CommonName: cn},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  isCA,
		BasicConstraintsValid: true,
		KeyUsage:              usage,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	if isCA {
		tmpl.KeyUsage |= x509.KeyUsageCertSign
	}
	if ip := net.ParseIP(cn); ip != nil {
		tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
	}
	for _, n := range names {
		if ip := net.ParseIP(n); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, n)
		}
	}
	parent, parentKey := tmpl, key
	if !isCA {
		parent, parentKey = ca.Cert.Cert, ca.Key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, key.Public(), parentKey)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &Cert{Cert: c, Key: key}
}

// Pool returns a pool holding only the CA's certificate.
func (ca *TestCA) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.Cert.Cert)
	return p
}

// TLS returns c as a tls.Certificate.
func (c *Cert) TLS() tls.Certificate {
	return tls.Certificate{Certificate: [][]byte{c.Cert.Raw}, PrivateKey: c.Key, Leaf: c.Cert}
}

// CertPEM returns the certificate PEM-encoded.
func (c *Cert) CertPEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Cert.Raw})
}

// KeyPEM returns the private key PEM-encoded: "RSA PRIVATE KEY" (PKCS #1)
// or "EC PRIVATE KEY" (SEC 1), as openssl writes them.
func (c *Cert) KeyPEM(t testing.TB) []byte {
	t.Helper()
	switch k := c.Key.(type) {
	case *rsa.PrivateKey:
		return pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(k)})
	case *ecdsa.PrivateKey:
		der, err := x509.MarshalECPrivateKey(k)
		if err != nil {
			t.Fatal(err)
		}
		return pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der})
	}
	t.Fatalf("unknown key type %T", c.Key)
	return nil
}

// WriteFiles writes the certificate to dir/name.crt and its key to
// dir/name.key and returns both paths.
func (c *Cert) WriteFiles(t testing.TB, dir, name string) (certFile, keyFile string) {
	t.Helper()
	certFile, keyFile = filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key")
	if err := os.WriteFile(certFile, c.CertPEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, c.KeyPEM(t), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}
