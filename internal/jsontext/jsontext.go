// Package jsontext checks text as a client sent it, before it is decoded: \u escapes of half a
// UTF-16 surrogate pair, which decoders turn silently into U+FFFD, in JSON and in GraphQL
// documents.
package jsontext

import "bytes"

// LoneSurrogate is the offset of the first \u escape in b that is half of a UTF-16 surrogate
// pair without its other half (such as "\udfff"), or -1. Go's decoder turns each into U+FFFD,
// which the server would store in place of what the client meant; RFC 8259 leaves such text's
// meaning unpredictable. b need not be valid JSON: a backslash outside strings is not looked at
// by a decoder, which refuses that text anyway.
func LoneSurrogate(b []byte) int {
	for i := 0; ; {
		j := bytes.IndexByte(b[i:], '\\')
		if j < 0 {
			return -1
		}
		i += j
		next, lone := Escape(b, i)
		if lone {
			return i
		}
		i = next
	}
}

// Escape looks at the escape at b[i] (a backslash): it returns where the text after it starts
// (after both halves of an escaped surrogate pair), and whether it is a \u escape of half a
// surrogate pair without the other.
func Escape[T string | []byte](b T, i int) (next int, lone bool) {
	if i+1 >= len(b) {
		return len(b), false
	}
	if b[i+1] != 'u' {
		return i + 2, false // \\, \", \n...: the escaped character starts no other escape
	}
	r, ok := hex4(b, i+2)
	switch {
	case !ok:
		return i + 2, false // malformed: the decoder refuses it
	case r >= 0xDC00 && r <= 0xDFFF: // a low half with no high half before it
		return i + 6, true
	case r >= 0xD800 && r <= 0xDBFF:
		if i+11 < len(b) && b[i+6] == '\\' && b[i+7] == 'u' {
			if lo, ok := hex4(b, i+8); ok && lo >= 0xDC00 && lo <= 0xDFFF {
				return i + 12, false
			}
		}
		return i + 6, true
	}
	return i + 6, false
}

// GraphQLLoneSurrogate is the offset of the first \u escape of half a surrogate pair in the
// strings of a GraphQL document, or -1: the specification makes it a syntax error, which the
// parser here does not raise (it decodes U+FFFD). Block strings ("""), where a backslash is
// text, and comments are skipped.
func GraphQLLoneSurrogate(doc string) int {
	for i := 0; i < len(doc); i++ {
		switch doc[i] {
		case '#':
			for i < len(doc) && doc[i] != '\n' && doc[i] != '\r' {
				i++
			}
		case '"':
			if i+2 < len(doc) && doc[i+1] == '"' && doc[i+2] == '"' {
				i += 3
				for i < len(doc) && !(doc[i] == '"' && i+2 < len(doc) && doc[i+1] == '"' && doc[i+2] == '"') {
					if doc[i] == '\\' && i+3 < len(doc) && doc[i+1] == '"' && doc[i+2] == '"' && doc[i+3] == '"' {
						i += 4 // \""" is text
						continue
					}
					i++
				}
				i += 2 // the closing """ (the loop's i++ takes its last quote)
				continue
			}
			for i++; i < len(doc) && doc[i] != '"' && doc[i] != '\n' && doc[i] != '\r'; {
				if doc[i] != '\\' {
					i++
					continue
				}
				next, lone := Escape(doc, i)
				if lone {
					return i
				}
				i = next
			}
		}
	}
	return -1
}

// hex4 reads the four hex digits at b[at:].
func hex4[T string | []byte](b T, at int) (rune, bool) {
	if at+4 > len(b) {
		return 0, false
	}
	var r rune
	for k := at; k < at+4; k++ {
		c := b[k]
		switch {
		case c >= '0' && c <= '9':
			r = r<<4 | rune(c-'0')
		case c >= 'a' && c <= 'f':
			r = r<<4 | rune(c-'a'+10)
		case c >= 'A' && c <= 'F':
			r = r<<4 | rune(c-'A'+10)
		default:
			return 0, false
		}
	}
	return r, true
}
