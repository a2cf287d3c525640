package export

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"unicode/utf8"
)

// SentencePiece is one piece of a SentencePiece model (tokenizer.model).
type SentencePiece struct {
	// Piece is the piece's text; Score its score; Type its sentencepiece.ModelProto
	// SentencePiece.Type (1 normal, 2 unknown, 3 control, 4 user-defined, 5 unused, 6 byte),
	// which are GGUF's token type values.
	Piece string
	Score float32
	Type  int
}

// maxPieces bounds the pieces accepted from a tokenizer.model.
const maxPieces = 1 << 24

// ParseSentencePieceModel reads the pieces of a serialized sentencepiece.ModelProto
// (tokenizer.model): field 1, repeated SentencePiece {piece = 1 (string), score = 2 (float),
// type = 3 (enum, default NORMAL)}. Other fields are skipped. It is the minimal protobuf reading
// the GGUF export needs for token scores.
func ParseSentencePieceModel(data []byte) ([]SentencePiece, error) {
	var pieces []SentencePiece
	err := walkProto(data, func(field int, wire int, v uint64, b []byte) error {
		if field != 1 {
			return nil
		}
		if wire != 2 {
			return fmt.Errorf("tokenizer.model: field pieces has wire type %d, want 2 (bytes)", wire)
		}
		if len(pieces) >= maxPieces {
			return fmt.Errorf("tokenizer.model: more than %d pieces", maxPieces)
		}
		p := SentencePiece{Type: 1}
		err := walkProto(b, func(f int, w int, v uint64, s []byte) error {
			switch f {
			case 1:
				if w != 2 {
					return fmt.Errorf("piece %d: field piece has wire type %d, want 2", len(pieces), w)
				}
				if !utf8.Valid(s) {
					return fmt.Errorf("piece %d: text is not valid UTF-8", len(pieces))
				}
				p.Piece = string(s)
			case 2:
				if w != 5 {
					return fmt.Errorf("piece %d: field score has wire type %d, want 5 (float)", len(pieces), w)
				}
				p.Score = math.Float32frombits(uint32(v))
			case 3:
				if w != 0 {
					return fmt.Errorf("piece %d: field type has wire type %d, want 0 (varint)", len(pieces), w)
				}
				if v < 1 || v > 6 {
					return fmt.Errorf("piece %d: type %d, want 1..6", len(pieces), v)
				}
				p.Type = int(v)
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("tokenizer.model: %w", err)
		}
		pieces = append(pieces, p)
		return nil
	})
	if err != nil {
		return nil, err
	}
	if len(pieces) == 0 {
		return nil, errors.New("tokenizer.model: no pieces")
	}
	return pieces, nil
}

// walkProto calls fn for every field of a protobuf message: varint (wire 0) and fixed (1, 5)
// values in v, length-delimited (2) contents in b. Groups (3, 4) are an error.
func walkProto(data []byte, fn func(field, wire int, v uint64, b []byte) error) error {
	for len(data) > 0 {
		key, n := binary.Uvarint(data)
		if n <= 0 {
			return errors.New("malformed field key")
		}
		data = data[n:]
		field, wire := key>>3, int(key&7)
		if field == 0 || field > 1<<29 {
			return fmt.Errorf("invalid field number %d", field)
		}
		var v uint64
		var b []byte
		switch wire {
		case 0:
			v, n = binary.Uvarint(data)
			if n <= 0 {
				return fmt.Errorf("field %d: malformed varint", field)
			}
			data = data[n:]
		case 1:
			if len(data) < 8 {
				return fmt.Errorf("field %d: truncated fixed64", field)
			}
			v, data = binary.LittleEndian.Uint64(data), data[8:]
		case 5:
			if len(data) < 4 {
				return fmt.Errorf("field %d: truncated fixed32", field)
			}
			v, data = uint64(binary.LittleEndian.Uint32(data)), data[4:]
		case 2:
			l, n := binary.Uvarint(data)
			if n <= 0 || l > uint64(len(data)-n) {
				return fmt.Errorf("field %d: bad length", field)
			}
			b, data = data[n:n+int(l)], data[n+int(l):]
		default:
			return fmt.Errorf("field %d: unsupported wire type %d", field, wire)
		}
		if err := fn(int(field), wire, v, b); err != nil {
			return err
		}
	}
	return nil
}
