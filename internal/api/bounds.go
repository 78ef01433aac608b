package api

import (
	"context"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/gqlerror"
)

// What one response may carry in errors, whatever the request held: a document with thousands
// of unknown directives would otherwise be answered thousands of errors, and a megabyte-long
// name would be quoted back whole.
const (
	// MaxErrors is how many errors a response carries; one more error (TooManyErrors) says how
	// many were left out.
	MaxErrors = 20
	// TooManyErrors is the code of the error that stands for those left out.
	TooManyErrors = "TOO_MANY_ERRORS"
	// maxMessage bounds the bytes of one error message, maxQuoted those of one quoted name or
	// value inside it, maxLocations the locations of one error.
	maxMessage   = 512
	maxQuoted    = 64
	maxLocations = 8
)

// boundErrors keeps the first MaxErrors errors of a response, then one that counts the others.
// Errors are presented (and counted in metrics) before: only the answer is cut.
func boundErrors(ctx context.Context, next graphql.ResponseHandler) *graphql.Response {
	resp := next(ctx)
	if resp == nil || len(resp.Errors) <= MaxErrors {
		return resp
	}
	more := len(resp.Errors) - MaxErrors
	// A new list: the full one may be shared with whoever collected it.
	resp.Errors = append(resp.Errors[:MaxErrors:MaxErrors], &gqlerror.Error{
		Message:    fmt.Sprintf("%d more errors left out (a response carries the first %d)", more, MaxErrors),
		Extensions: map[string]any{"code": TooManyErrors, "leftOut": more},
	})
	return resp
}

// bounded shortens what an error quotes of the request: each quoted name or value to maxQuoted
// bytes, the whole message to maxMessage, its locations to maxLocations.
func bounded(e *gqlerror.Error) *gqlerror.Error {
	if e == nil {
		return e
	}
	if len(e.Message) > maxQuoted {
		e.Message = shorten(e.Message)
	}
	if len(e.Locations) > maxLocations {
		e.Locations = e.Locations[:maxLocations:maxLocations]
	}
	return e
}

func shorten(msg string) string {
	var b strings.Builder
	for {
		open := strings.IndexByte(msg, '"')
		if open < 0 {
			break
		}
		end := strings.IndexByte(msg[open+1:], '"')
		if end < 0 {
			break
		}
		quoted := msg[open+1 : open+1+end]
		b.WriteString(msg[:open+1])
		if len(quoted) > maxQuoted {
			b.WriteString(cut(quoted, maxQuoted))
			b.WriteString("…")
		} else {
			b.WriteString(quoted)
		}
		b.WriteByte('"')
		msg = msg[open+2+end:]
	}
	b.WriteString(msg)
	out := b.String()
	if len(out) > maxMessage {
		out = cut(out, maxMessage) + "…"
	}
	return out
}

// cut returns at most n bytes of s, whole runes only.
func cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// undecodedBody is how gqlgen's transports begin the message of a body they could not decode;
// the message then quotes the whole body after " body:".
const undecodedBody = "json request body could not be decoded: "

// notDecoded rewrites gqlgen's error for a request body it could not decode (its message starts
// with undecodedBody) without the body it quotes.
func notDecoded(e *gqlerror.Error) *gqlerror.Error {
	reason, _, _ := strings.Cut(strings.TrimPrefix(e.Message, undecodedBody), " body:")
	e.Message = "the request body is not one GraphQL request in JSON: " + reason
	e.Extensions = map[string]any{"code": "BAD_REQUEST"}
	return e
}
