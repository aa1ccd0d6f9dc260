package compress

import "testing"

func TestCodecNames(t *testing.T) {
	for _, tc := range []struct {
		c    Codec
		name string
	}{{None, "none"}, {Snappy, "snappy"}, {Zstd, "zstd"}} {
		if got := tc.c.String(); got != tc.name {
			t.Errorf("Codec(%d).String() = %q, want %q", uint8(tc.c), got, tc.name)
		}
		for _, s := range []string{tc.name, upper(tc.name)} {
			c, err := ParseCodec(s)
			if err != nil || c != tc.c {
				t.Errorf("ParseCodec(%q) = %v, %v; want %v", s, c, err, tc.c)
			}
		}
	}
	if got := Codec(200).String(); got != "Codec(200)" {
		t.Errorf("Codec(200).String() = %q", got)
	}
	for _, s := range []string{"", "lz4", "Codec(1)", "snappy ", "s2"} {
		if c, err := ParseCodec(s); err == nil {
			t.Errorf("ParseCodec(%q) = %v, want an error", s, c)
		}
	}
}

// TestCodecValues pins the on-disk values of the codecs.
func TestCodecValues(t *testing.T) {
	if None != 0 || Snappy != 1 || Zstd != 2 {
		t.Fatalf("codec values changed: none=%d snappy=%d zstd=%d; they are part of the file format",
			None, Snappy, Zstd)
	}
}

func upper(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'a' <= c && c <= 'z' {
			b[i] = c - 'a' + 'A'
		}
	}
	return string(b)
}
