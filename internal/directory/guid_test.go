package directory

import "testing"

func TestGUIDString(t *testing.T) {
	tests := []struct {
		name string
		in   []byte
		want string
	}{
		// objectGUID {01020304-0506-0708-090a-0b0c0d0e0f10} as AD stores it: the first three
		// fields little-endian.
		{"AD binary", []byte{4, 3, 2, 1, 6, 5, 8, 7, 9, 10, 11, 12, 13, 14, 15, 16}, "01020304-0506-0708-090a-0b0c0d0e0f10"},
		{"entryUUID text", []byte("8F3A6B5C-1D2E-4F60-9A8B-7C6D5E4F3A2B"), "8f3a6b5c-1d2e-4f60-9a8b-7c6d5e4f3a2b"},
		{"absent", nil, ""},
		{"binary of the wrong length", []byte{0xff, 0xfe, 0x00}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := guidString(tt.in); got != tt.want {
				t.Errorf("guidString(%x) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}
