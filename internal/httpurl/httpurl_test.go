package httpurl

import "testing"

func TestValid(t *testing.T) {
	for _, tt := range []struct {
		url  string
		want bool
	}{
		{"http://127.0.0.1:15020/quitquitquit", true},
		{"https://localhost/shutdown", true},
		{"http://[::1]:9091", true},
		{"http://127.0.0.1:65535/q", true},
		{"127.0.0.1:15020", false},
		{"ftp://host/x", false},
		{"http://:15020/q", false},
		{"http://127.0.0.1:0/q", false},
		{"http://127.0.0.1:99999/q", false},
		{"http://127.0.0.1:/q", false},
		{"http://h:x/q", false},
	} {
		if got := Valid(tt.url); got != tt.want {
			t.Errorf("Valid(%q) = %v, want %v", tt.url, got, tt.want)
		}
	}
}
