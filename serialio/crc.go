package serialio

// crcTable is the byte-wise lookup table for CRC-16/CCITT-FALSE.
var crcTable = func() (t [256]uint16) {
	for i := range t {
		c := uint16(i) << 8
		for range 8 {
			if c&0x8000 != 0 {
				c = c<<1 ^ 0x1021
			} else {
				c <<= 1
			}
		}
		t[i] = c
	}
	return t
}()

// crcInit is the initial value of CRC-16/CCITT-FALSE.
const crcInit uint16 = 0xFFFF

// CRC16 returns the CRC-16/CCITT-FALSE of p: polynomial 0x1021, initial value
// 0xFFFF, no reflection, no final xor. CRC16([]byte("123456789")) is 0x29B1.
func CRC16(p []byte) uint16 {
	return crcUpdate(crcInit, p)
}

// crcUpdate continues a CRC-16/CCITT-FALSE computation over p.
func crcUpdate(crc uint16, p []byte) uint16 {
	for _, b := range p {
		crc = crc<<8 ^ crcTable[byte(crc>>8)^b]
	}
	return crc
}
