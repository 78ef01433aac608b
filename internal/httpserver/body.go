package httpserver

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"unicode/utf8"

	"github.com/wikigraph/wikigraph/internal/media"
)

// checkBody tells why body, the POST body of a /query request, is not one GraphQL request in
// JSON, in a short message that quotes none of it; ok when it may be one. gqlgen answers a body
// it cannot decode with the whole body quoted (a megabyte of batched operations comes back as
// a megabyte), and its streaming transports (server-sent events, multipart/mixed) also log it
// whole. A plain POST is only looked at here (a JSON array or a value that is not an object);
// gqlgen's own decoding error for it loses its quote in the error presenter. A streaming request
// is decoded here too, so that gqlgen never fails to decode it.
func checkBody(body []byte, decode bool) (code, message string, ok bool) {
	trimmed := bytes.TrimLeft(body, " \t\r\n")
	switch {
	case len(trimmed) == 0:
		return "BAD_REQUEST", `the request body is empty: POST one JSON object {"query": "..."}`, false
	case trimmed[0] == '[':
		return "BATCH_NOT_SUPPORTED", "batched operations (a JSON array) are not supported: POST one JSON object per operation", false
	case trimmed[0] != '{':
		return "BAD_REQUEST", `the request body is not a JSON object: POST one JSON object {"query": "..."}`, false
	case !decode:
		return "", "", true
	}
	// The fields gqlgen decodes, with their types; the others are skipped unread.
	var params struct {
		Query         *string         `json:"query"`
		OperationName *string         `json:"operationName"`
		Variables     map[string]skip `json:"variables"`
		Extensions    map[string]skip `json:"extensions"`
	}
	err := json.Unmarshal(body, &params)
	if err == nil {
		return "", "", true
	}
	var syntax *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syntax):
		// The error names one character at most.
		message = fmt.Sprintf("the request body is not valid JSON (at byte %d): %s", syntax.Offset, strings.TrimPrefix(err.Error(), "json: "))
	case errors.As(err, &typ) && typ.Field != "":
		message = fmt.Sprintf("%q in the request body must be %s, not %s", typ.Field, jsonKind(typ.Type.Kind().String()), typ.Value)
	default:
		message = "the request body is not one GraphQL request in JSON"
	}
	return "BAD_REQUEST", message, false
}

// skip is any JSON value, checked for syntax only.
type skip struct{}

func (*skip) UnmarshalJSON([]byte) error { return nil }

func jsonKind(goKind string) string {
	switch goKind {
	case "string":
		return "a string"
	case "map":
		return "an object"
	}
	return goKind
}

// invalidUTF8 is the offset of the first byte of body that is not valid UTF-8, or -1.
func invalidUTF8(body []byte) int {
	if utf8.Valid(body) { // the common case, scanned fast
		return -1
	}
	for i := 0; i < len(body); {
		r, n := utf8.DecodeRune(body[i:])
		if r == utf8.RuneError && n <= 1 {
			return i
		}
		i += n
	}
	return -1
}

// answerType is the Content-Type of an error answered here: the media type r accepts, and
// application/json when it accepts neither (the 406 would hide what is wrong with the request).
func answerType(r *http.Request) string {
	m, ok := media.Negotiate(r.Header.Get("Accept"))
	if !ok {
		m = media.JSON
	}
	return media.ContentType(m)
}

// writeError answers one GraphQL error with its code and status.
func writeError(w http.ResponseWriter, r *http.Request, status int, code, message string) {
	b, _ := json.Marshal(map[string]any{"errors": []any{map[string]any{
		"message": message, "extensions": map[string]any{"code": code},
	}}})
	w.Header().Set("Content-Type", answerType(r))
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}
