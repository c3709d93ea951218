package testbench

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"time"
)

// TLSFiles are the PEM files WriteTLS writes: a test CA, and a server certificate and key.
type TLSFiles struct {
	CAFile   string // ca.pem: what a client verifies the server with
	CertFile string // cert.pem: the server certificate, signed by the CA
	KeyFile  string // key.pem: its private key, mode 0600
}

// WriteTLS makes a new CA called caName and a certificate for host signed by it, and writes
// them to dir (made if need be) as ca.pem, cert.pem and key.pem. The host is in the DNS SANs
// (Go ignores the CN) and there is no IP SAN, as with a real site's certificate: a client
// must say the name. The key is 0600: Samba refuses a key others can read, and Postfix reads
// it as root before it drops privileges.
func WriteTLS(dir, caName, host string) (TLSFiles, error) {
	f := TLSFiles{CAFile: filepath.Join(dir, "ca.pem"), CertFile: filepath.Join(dir, "cert.pem"), KeyFile: filepath.Join(dir, "key.pem")}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return f, err
	}
	now := time.Now()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return f, err
	}
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{Organization: []string{"postern testbench"}, CommonName: caName},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.AddDate(20, 0, 0),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return f, err
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return f, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return f, err
	}
	leafDER, err := x509.CreateCertificate(rand.Reader, &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{Organization: []string{"postern testbench"}, CommonName: host},
		DNSNames:     []string{host},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.AddDate(20, 0, 0),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}, ca, &key.PublicKey, caKey)
	if err != nil {
		return f, err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return f, err
	}
	pemFile := func(path, typ string, der []byte, mode os.FileMode) error {
		return os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), mode)
	}
	return f, errors.Join(pemFile(f.CAFile, "CERTIFICATE", caDER, 0o644),
		pemFile(f.CertFile, "CERTIFICATE", leafDER, 0o644),
		pemFile(f.KeyFile, "PRIVATE KEY", keyDER, 0o600))
}
