package cluster

import (
	"crypto/ecdh"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"strconv"

	"github.com/nats-io/nats.go"
)

// Message authentication (see the package doc, "Trust"): at join the worker and the
// coordinator exchange ephemeral X25519 public keys (Hello.Key, JoinReply.Key) and derive a
// session key that never travels; every work request, heartbeat and result then carries a
// sequence number and an HMAC-SHA256 of its kind, sequence number and bytes in the NATS
// headers below, and the coordinator's answers to work requests an HMAC bound to the request's
// reply subject.
const (
	headerSeq = "Evopress-Seq"
	headerMAC = "Evopress-Mac"
)

// The kinds of signed messages: the last element of the subject a worker publishes on.
const (
	kindWork   = "work"
	kindResult = "result"
	kindHB     = "hb"
)

// newSessionKey returns an ephemeral X25519 key pair.
func newSessionKey() (*ecdh.PrivateKey, error) {
	return ecdh.X25519().GenerateKey(rand.Reader)
}

// publicHex is the hex form of a key pair's public key, as Hello.Key and JoinReply.Key carry it.
func publicHex(k *ecdh.PrivateKey) string { return hex.EncodeToString(k.PublicKey().Bytes()) }

// sessionKey derives the MAC key of one worker's session in job from this side's private key
// and the other side's public key (hex).
func sessionKey(priv *ecdh.PrivateKey, peer, job, worker string) ([]byte, error) {
	b, err := hex.DecodeString(peer)
	if err != nil {
		return nil, fmt.Errorf("session key: %w", err)
	}
	pub, err := ecdh.X25519().NewPublicKey(b)
	if err != nil {
		return nil, fmt.Errorf("session key: %w", err)
	}
	shared, err := priv.ECDH(pub)
	if err != nil {
		return nil, fmt.Errorf("session key: %w", err)
	}
	h := sha256.New()
	for _, s := range []string{Protocol, job, worker} {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	h.Write(shared)
	return h.Sum(nil), nil
}

// mac is the HMAC-SHA256 under key of a message of the given kind and sequence number.
func mac(key []byte, kind string, seq uint64, data []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(kind))
	var b [9]byte
	binary.BigEndian.PutUint64(b[1:], seq)
	m.Write(b[:])
	m.Write(data)
	return m.Sum(nil)
}

// sign sets the sequence number and MAC headers of msg.
func sign(msg *nats.Msg, key []byte, kind string, seq uint64) {
	if msg.Header == nil {
		msg.Header = nats.Header{}
	}
	msg.Header.Set(headerSeq, strconv.FormatUint(seq, 10))
	msg.Header.Set(headerMAC, hex.EncodeToString(mac(key, kind, seq, msg.Data)))
}

// verify checks the MAC headers of msg under key and returns its sequence number.
func verify(msg *nats.Msg, key []byte, kind string) (uint64, bool) {
	if len(key) == 0 || msg.Header == nil {
		return 0, false
	}
	seq, err := strconv.ParseUint(msg.Header.Get(headerSeq), 10, 64)
	if err != nil {
		return 0, false
	}
	got, err := hex.DecodeString(msg.Header.Get(headerMAC))
	if err != nil {
		return 0, false
	}
	return seq, hmac.Equal(got, mac(key, kind, seq, msg.Data))
}

// replyKind is the kind of the coordinator's answer to a work request sent with reply subject
// reply: a signed answer is valid for that request only.
func replyKind(reply string) string { return "reply " + reply }
