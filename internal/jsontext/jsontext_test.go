package jsontext

import (
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
)

func TestLoneSurrogate(t *testing.T) {
	for text, want := range map[string]int{
		`{"email":"a@b"}`:                -1,
		`{"email":"a\udfffb@x"}`:         11,
		`{"email":"a\uD800b@x"}`:         11,
		`{"email":"a\ud800\u0041"}`:      11,
		`{"email":"a\ud83d\ude00b"}`:     -1, // a pair: 😀
		`{"email":"\ud83D\uDE00\udc00"}`: 22,
		`{"email":"a\\udfff"}`:           -1, // an escaped backslash, then text
		`{"email":"a\\\udfff"}`:          13,
		`{"q":"\n\t\"\u00e9"}`:           -1,
		`{"q":"\u12"}`:                   -1, // malformed: the decoder refuses it
		`\`:                              -1,
		`"\ud800`:                        1,
		`{"a":"\ud800\udc00"}`:           -1,
	} {
		assert.Equal(t, want, LoneSurrogate([]byte(text)), text)
	}
}

// FuzzLoneSurrogate: whenever LoneSurrogate finds nothing in a JSON string, decoding it gives
// back no U+FFFD that the text did not hold as such (it was not made up from a lone escape).
func FuzzLoneSurrogate(f *testing.F) {
	for _, s := range []string{`"a"`, `"\udfff"`, `"\ud83d\ude00"`, `"\\udfff"`, `"\ufffd"`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		var s string
		if !utf8.ValidString(text) || json.Unmarshal([]byte(text), &s) != nil {
			return
		}
		if LoneSurrogate([]byte(text)) >= 0 {
			return
		}
		var raw []rune
		for _, r := range s {
			raw = append(raw, r)
		}
		made := 0
		for _, r := range raw {
			if r == utf8.RuneError {
				made++
			}
		}
		// Each U+FFFD decoded was in the text, raw or as \ufffd.
		var lit int
		for i := 0; i < len(text); {
			r, n := utf8.DecodeRuneInString(text[i:])
			if r == utf8.RuneError {
				lit++
			}
			if i+6 <= len(text) && text[i:i+2] == `\u` && strings.EqualFold(text[i+2:i+6], "fffd") {
				lit++
			}
			i += n
		}
		if made > lit {
			t.Fatalf("%q decoded to %q: %d U+FFFD, %d in the text", text, s, made, lit)
		}
	})
}

func TestGraphQLLoneSurrogate(t *testing.T) {
	for doc, want := range map[string]int{
		`{ a(s: "x") }`:                    -1,
		`{ a(s: "x\udfff") }`:              9,
		`{ a(s: "\ud83d\ude00") }`:         -1,
		`{ a(s: """\udfff""") }`:           -1, // a block string: backslashes are text
		`{ a(s: """\""" \udfff""") }`:      -1,
		`{ a(s: """x""", t: "\ud800") }`:   20,
		"# \\udfff\n{ a }":                 -1, // a comment
		`{ a(s: "\\udfff") }`:              -1, // an escaped backslash
		`{ a(s: "\"\udfff") }`:             10,
		`{ a(s: "unterminated`:             -1,
		`{ a(s: """unterminated \udfff`:    -1,
		"{ a(s: \"x\"\n b: \"\\uDC00\") }": 16,
	} {
		assert.Equal(t, want, GraphQLLoneSurrogate(doc), doc)
	}
}
