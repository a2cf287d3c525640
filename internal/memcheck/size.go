package memcheck

import (
	"fmt"
	"math/big"
	"strings"
)

// ParseSize reads a size: a number of bytes ("123456789"), or a decimal number with a unit —
// kB, MB, GB, TB (powers of 1000; K, M, G and T too) or KiB, MiB, GiB, TiB (powers of 1024), any
// case — rounded down to whole bytes ("5.2MB" is 5200000 exactly).
func ParseSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	num := strings.TrimRightFunc(t, func(r rune) bool { return r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z' })
	unit := strings.ToLower(strings.TrimSpace(t[len(num):]))
	mult, ok := map[string]int64{"": 1, "b": 1, "k": 1e3, "kb": 1e3, "m": 1e6, "mb": 1e6, "g": 1e9, "gb": 1e9,
		"t": 1e12, "tb": 1e12, "kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30, "tib": 1 << 40}[unit]
	v, okNum := new(big.Rat).SetString(strings.TrimSpace(num))
	if ok && okNum && strings.IndexAny(num, "eE/") < 0 {
		v.Mul(v, new(big.Rat).SetInt64(mult))
		n := new(big.Int).Quo(v.Num(), v.Denom())
		if v.Sign() > 0 && n.Sign() > 0 && n.BitLen() < 62 {
			return n.Int64(), nil
		}
	}
	return 0, fmt.Errorf("size %q: want a positive number of bytes, optionally with a unit (kB, MB, GB, TB, KiB, MiB, GiB, TiB)", s)
}

// FormatBytes writes a size in binary units with three significant digits ("2.31 GiB",
// "512 MiB", "100 B").
func FormatBytes(n int64) string {
	units := []string{"B", "KiB", "MiB", "GiB", "TiB"}
	v, i := float64(n), 0
	for v >= 1024 && i < len(units)-1 {
		v /= 1024
		i++
	}
	switch {
	case i == 0:
		return fmt.Sprintf("%d B", n)
	case v >= 100:
		return fmt.Sprintf("%.0f %s", v, units[i])
	case v >= 10:
		return fmt.Sprintf("%.1f %s", v, units[i])
	}
	return fmt.Sprintf("%.2f %s", v, units[i])
}
