package service

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"strings"

	"golang.org/x/crypto/argon2"

	"github.com/aramaki/aramaki"
)

// Argon2id parameters: OWASP's recommendation for argon2id (19 MiB, 2
// passes, 1 lane). They are stored with each hash, so they can be raised
// later without invalidating existing passwords.
const (
	argonTime    = 2
	argonMemory  = 19 * 1024
	argonThreads = 1
	argonKeyLen  = 32
	argonSaltLen = 16
)

// Password limits. The upper bound keeps hashing cost bounded.
const (
	MinPasswordLen = 12
	MaxPasswordLen = 256
)

// HashPassword hashes a password with argon2id into a PHC-style string.
func HashPassword(password string) (string, error) {
	salt := make([]byte, argonSaltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("read random salt: %w", err)
	}
	key := argon2.IDKey([]byte(password), salt, argonTime, argonMemory, argonThreads, argonKeyLen)
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, argonMemory, argonTime, argonThreads,
		base64.RawStdEncoding.EncodeToString(salt), base64.RawStdEncoding.EncodeToString(key)), nil
}

// CheckPassword reports whether password matches the encoded hash.
func CheckPassword(encoded, password string) bool {
	parts := strings.Split(encoded, "$")
	if len(parts) != 6 || parts[1] != "argon2id" {
		return false
	}
	var version int
	var memory, time uint32
	var threads uint8
	if _, err := fmt.Sscanf(parts[2], "v=%d", &version); err != nil || version != argon2.Version {
		return false
	}
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &memory, &time, &threads); err != nil ||
		memory == 0 || memory > 1<<20 || time == 0 || time > 10 || threads == 0 {
		return false
	}
	salt, err1 := base64.RawStdEncoding.DecodeString(parts[4])
	want, err2 := base64.RawStdEncoding.DecodeString(parts[5])
	if err1 != nil || err2 != nil || len(want) == 0 {
		return false
	}
	got := argon2.IDKey([]byte(password), salt, time, memory, threads, uint32(len(want)))
	return subtle.ConstantTimeCompare(got, want) == 1
}

// ValidatePassword enforces the password policy.
func ValidatePassword(password string) error {
	if n := len([]rune(strings.TrimSpace(password))); n < MinPasswordLen || len(password) > MaxPasswordLen {
		return aramaki.Errorf(aramaki.EINVALID, "a password needs %d to %d characters, not counting spaces at the ends", MinPasswordLen, MaxPasswordLen)
	}
	return nil
}

// RandomPassword makes a password for a new user: 24 characters from a
// 32-letter alphabet (120 bits), easy to read out over the phone.
func RandomPassword() (string, error) {
	const alphabet = "abcdefghijkmnpqrstuvwxyz23456789"
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("read random password: %w", err)
	}
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b[0:6]) + "-" + string(b[6:12]) + "-" + string(b[12:18]) + "-" + string(b[18:24]), nil
}

// tokenPrefix marks Aramaki API tokens, so secret scanners can find them.
const tokenPrefix = "ark_"

// newTokenSecret makes an API token: "ark_<id>_<secret>". The id finds the
// token in the store; only the SHA-256 of the secret is kept (a 256-bit
// random secret needs no slow hash).
func newTokenSecret() (id, raw string, hash []byte, err error) {
	b := make([]byte, 8+32)
	if _, err := rand.Read(b); err != nil {
		return "", "", nil, fmt.Errorf("read random token: %w", err)
	}
	id = hex.EncodeToString(b[:8])
	secret := base64.RawURLEncoding.EncodeToString(b[8:])
	sum := sha256.Sum256([]byte(secret))
	return id, tokenPrefix + id + "_" + secret, sum[:], nil
}

// parseToken splits a raw token into its id and the hash of its secret.
func parseToken(raw string) (id string, hash []byte, ok bool) {
	rest, found := strings.CutPrefix(raw, tokenPrefix)
	if !found || len(raw) > 100 {
		return "", nil, false
	}
	id, secret, found := strings.Cut(rest, "_")
	if !found || len(id) != 16 || secret == "" {
		return "", nil, false
	}
	sum := sha256.Sum256([]byte(secret))
	return id, sum[:], true
}
