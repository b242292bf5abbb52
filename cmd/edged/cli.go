package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strings"

	"github.com/edged/edged/broker/auth"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

// The command line follows the usual conventions: help (-h, -help,
// --help, `edged help [COMMAND]`) goes to stdout with exit status 0, a
// usage error to stderr with status 2, any other failure exits 1.

const usage = `edged: an MQTT broker for the edge

usage:
  edged [-c FILE]                 run the broker (without -c: the embedded default,
                                  127.0.0.1:1883, anonymous, data in ./edged-data)
  edged check-config [-c FILE] [-skip-files]
                                  validate a configuration file and the files it names
  edged import-mosquitto FILE     print the edged configuration equivalent to a mosquitto.conf
  edged passwd [-c] [-b] FILE USER [PASSWORD]
                                  add or replace a user in a password file (Mosquitto's
                                  format); -c starts a new file
  edged passwd -D FILE USER       remove a user
  edged passwd -U FILE            hash every plain-text password in FILE
  edged db check [-c FILE]        check the store in data_dir and summarize what it holds
  edged db compact [-c FILE]      rewrite the store without free pages (edged must be stopped)
  edged serial-ports              list serial ports with USB ids and stable /dev/serial/by-id names
  edged version                   print the version (also edged --version, edged -v)
  edged help [COMMAND]            print this text, or a command's
`

// command is one subcommand.
type command struct {
	usage string
	run   func(args []string, stdin *os.File, stdout, stderr io.Writer) int
}

var commands map[string]command

func init() {
	commands = map[string]command{
		"run": {`usage: edged [run] [-c FILE]

Runs the broker with the configuration in FILE (configs/edged.yaml lists
every key); without -c, with the embedded default: 127.0.0.1:1883,
anonymous clients, data in ./edged-data. SIGHUP re-reads the password and
ACL files; SIGINT or SIGTERM drains and stops.
`, runCommand},
		"check-config": {`usage: edged check-config [-c FILE] [-skip-files]

Validates FILE as a start would, without starting: every key and value,
listener addresses (malformed, two listeners on one address), and the
files it names: password and ACL files, certificates and keys (missing,
swapped, a key that does not belong to its certificate) and CA bundles.
Problems are listed sorted by line; the exit status is 1 if there is any.

  -skip-files   check the values only, reading none of the files named
                (for a configuration written for another machine)
`, checkConfigCommand},
		"import-mosquitto": {`usage: edged import-mosquitto FILE

Reads a mosquitto.conf (with its include_dir) and prints the equivalent
edged configuration on stdout: listeners, TLS, password and ACL files
(edged reads both formats as they are), persistence, bridges with their
topic lines, and limits. What cannot be carried over is listed as comments
at the top of the output and on stderr. Review it, then check it:

  edged import-mosquitto /etc/mosquitto/mosquitto.conf > edged.yaml
  edged check-config -c edged.yaml
`, importMosquittoCommand},
		"passwd": {`usage: edged passwd [-c] FILE USER            prompt for USER's password
       edged passwd [-c] -b FILE USER PASSWORD  password on the command line
       edged passwd -D FILE USER                remove USER
       edged passwd -U FILE                     hash every plain-text password

Writes a password file in Mosquitto's format (PBKDF2-SHA512, $7$), as
mosquitto_passwd does; the options are mosquitto_passwd's. The file is
replaced atomically; send SIGHUP to a running edged to reload it.

  -c   create a new file, replacing an existing one
  -b   take the password from the command line (it shows in ps and shell history)
  -D   remove the user
  -U   hash the plain-text passwords of a file
  -H sha512-pbkdf2
       accepted for mosquitto_passwd scripts; the only hash edged writes
`, passwdCommand},
		"db": {`usage: edged db check [-c FILE]
       edged db compact [-c FILE]

check reads the whole store in data_dir, verifies every record and prints a
summary: sessions, queued messages, retained messages, bridge backlogs, file
size and free pages. compact rewrites the store without its free pages.
edged must be stopped for both.
`, dbCommandLine},
		"serial-ports": {`usage: edged serial-ports

Lists the serial ports of this machine with their USB ids and their stable
/dev/serial/by-id names, to put in the serial: section.
`, func(_ []string, _ *os.File, stdout, stderr io.Writer) int { return serialPorts(stdout, stderr) }},
		"version": {`usage: edged version | edged --version | edged -v

Prints the version.
`, func(_ []string, _ *os.File, stdout, _ io.Writer) int {
			fmt.Fprintln(stdout, "edged", version)
			return 0
		}},
	}
}

func isHelp(a string) bool { return a == "-h" || a == "-help" || a == "--help" }

func run(args []string, stdin *os.File, stdout, stderr io.Writer) int {
	name := "run"
	if len(args) > 0 {
		switch a := args[0]; {
		case a == "help" || isHelp(a):
			if a == "help" && len(args) > 1 {
				c, ok := commands[args[1]]
				if !ok {
					fmt.Fprintf(stderr, "edged help: unknown command %q\n\n%s", args[1], usage)
					return 2
				}
				fmt.Fprint(stdout, c.usage)
				return 0
			}
			fmt.Fprint(stdout, usage)
			return 0
		case a == "-v" || a == "-version" || a == "--version":
			name, args = "version", args[1:]
		case a != "" && a[0] != '-':
			name, args = a, args[1:]
		}
	}
	c, ok := commands[name]
	if !ok {
		fmt.Fprintf(stderr, "edged: unknown command %q\n\n%s", name, usage)
		return 2
	}
	for _, a := range args {
		if a == "--" {
			break
		}
		if isHelp(a) {
			fmt.Fprint(stdout, c.usage)
			return 0
		}
	}
	return c.run(args, stdin, stdout, stderr)
}

// parseFlags parses a command's flags; on a usage error it prints the
// problem and the command's usage to stderr and returns false.
func parseFlags(fs *flag.FlagSet, name string, args []string, stderr io.Writer) bool {
	fs.SetOutput(stderr)
	fs.Usage = func() {}
	if err := fs.Parse(args); err != nil {
		fmt.Fprintf(stderr, "\n%s", commands[name].usage)
		return false
	}
	if fs.NArg() > 0 && name != "passwd" {
		fmt.Fprintf(stderr, "edged %s: unexpected argument %q\n\n%s", name, fs.Arg(0), commands[name].usage)
		return false
	}
	return true
}

func runCommand(args []string, _ *os.File, _, stderr io.Writer) int {
	fs := flag.NewFlagSet("edged", flag.ContinueOnError)
	cfgPath := fs.String("c", "", "configuration file")
	if !parseFlags(fs, "run", args, stderr) {
		return 2
	}
	cfg, err := loadConfig(*cfgPath)
	if err != nil {
		return configError(stderr, *cfgPath, err)
	}
	log := newLogger(cfg.Log, stderr)
	if err := serve(cfg, log); err != nil {
		var se *startError
		if !errors.As(err, &se) { // a failed start is logged by build
			log.Error("edged stopped", "error", err)
		}
		return 1
	}
	return 0
}

func checkConfigCommand(args []string, _ *os.File, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("edged check-config", flag.ContinueOnError)
	cfgPath := fs.String("c", "", "configuration file")
	skipFiles := fs.Bool("skip-files", false, "do not read the files the configuration names")
	if !parseFlags(fs, "check-config", args, stderr) {
		return 2
	}
	if _, err := loadConfigFiles(*cfgPath, !*skipFiles); err != nil {
		return configError(stderr, *cfgPath, err)
	}
	name := *cfgPath
	if name == "" {
		name = "embedded default"
	}
	fmt.Fprintf(stdout, "%s: configuration OK\n", name)
	return 0
}

func dbCommandLine(args []string, _ *os.File, stdout, stderr io.Writer) int {
	if len(args) == 0 || (args[0] != "check" && args[0] != "compact") {
		fmt.Fprintf(stderr, "edged db: want check or compact\n\n%s", commands["db"].usage)
		return 2
	}
	cmd := "db " + args[0]
	fs := flag.NewFlagSet("edged "+cmd, flag.ContinueOnError)
	cfgPath := fs.String("c", "", "configuration file")
	if !parseFlags(fs, "db", args[1:], stderr) {
		return 2
	}
	cfg, err := loadConfig(*cfgPath)
	if err != nil {
		return configError(stderr, *cfgPath, err)
	}
	return dbCommand(cmd, storePath(cfg), stdout, stderr)
}

// passwdCommand implements `edged passwd`, with mosquitto_passwd's options.
func passwdCommand(args []string, stdin *os.File, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("edged passwd", flag.ContinueOnError)
	batch := fs.Bool("b", false, "take the password from the command line")
	del := fs.Bool("D", false, "remove the user")
	create := fs.Bool("c", false, "create a new password file")
	update := fs.Bool("U", false, "hash the plain-text passwords of a file")
	hashName := fs.String("H", "sha512-pbkdf2", "hash (only sha512-pbkdf2)")
	if !parseFlags(fs, "passwd", args, stderr) {
		return 2
	}
	usageErr := func(msg string) int {
		fmt.Fprintf(stderr, "edged passwd: %s\n\n%s", msg, commands["passwd"].usage)
		return 2
	}
	if *hashName != "sha512-pbkdf2" {
		return usageErr(fmt.Sprintf("-H %s: edged writes sha512-pbkdf2 ($7$) hashes only", *hashName))
	}
	a := fs.Args()
	if *update {
		if len(a) != 1 || *batch || *del || *create {
			return usageErr("-U takes one FILE and no other option")
		}
		if _, err := os.Stat(a[0]); err != nil {
			fmt.Fprintf(stderr, "edged passwd: %v\n", err)
			return 1
		}
		users, err := auth.HashPlaintextPasswords(a[0])
		if err != nil {
			fmt.Fprintf(stderr, "edged passwd: %v\n", err)
			return 1
		}
		fmt.Fprintf(stdout, "%s: %d plain-text password(s) hashed%s\n", a[0], len(users), userList(users))
		return 0
	}
	want := 2
	if *batch {
		want = 3
	}
	switch {
	case *del && (*batch || *create):
		return usageErr("-D goes without -b and -c")
	case len(a) != want:
		return usageErr("wrong number of arguments")
	}
	file, user := a[0], a[1]
	if *del {
		if err := auth.RemovePasswordEntry(file, user); err != nil {
			fmt.Fprintf(stderr, "edged passwd: %v\n", err)
			return 1
		}
		return 0
	}
	var password []byte
	if *batch {
		password = []byte(a[2])
	} else {
		var err error
		if password, err = readPassword(stdin, stderr); err != nil {
			fmt.Fprintf(stderr, "edged passwd: %v\n", err)
			return 1
		}
	}
	hash, err := auth.HashPassword(password)
	if err == nil {
		if *create {
			err = auth.CreatePasswordFile(file, user, hash)
		} else {
			err = auth.WritePasswordEntry(file, user, hash)
		}
	}
	if err != nil {
		fmt.Fprintf(stderr, "edged passwd: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "%s: user %s written; send SIGHUP to a running edged to reload it\n", file, user)
	return 0
}

func userList(users []string) string {
	if len(users) == 0 {
		return ""
	}
	return " (" + strings.Join(users, ", ") + ")"
}

// configError prints every configuration problem, one per line, with
// hints for the mistakes people coming from Mosquitto make, and returns
// the exit status for it.
func configError(stderr io.Writer, path string, err error) int {
	fmt.Fprintln(stderr, "edged: invalid configuration:")
	notHashed := map[string]bool{}
	for _, e := range flatten(err) {
		fmt.Fprintln(stderr, "  "+e.Error())
		var le *auth.LineError
		if errors.Is(e, auth.ErrNotHashed) && errors.As(e, &le) {
			notHashed[le.Path] = true
		}
	}
	for _, file := range slices.Sorted(maps.Keys(notHashed)) {
		fmt.Fprintf(stderr, "hint: %s holds plain-text passwords; run \"edged passwd -U %s\" to hash them all, or \"edged passwd %s USER\" for one\n",
			file, file, file)
	}
	if path != "" && looksLikeMosquittoConf(path) {
		fmt.Fprintf(stderr, "hint: %s looks like a mosquitto.conf; run \"edged import-mosquitto %s\" to convert it\n", path, path)
	}
	return 1
}
