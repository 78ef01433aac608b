// Package media chooses the media type of a GraphQL answer over HTTP from the request's Accept
// header, as the GraphQL over HTTP specification asks: application/graphql-response+json or
// application/json, whichever the client prefers; application/json without an Accept header and
// for a wildcard; nothing (406 Not Acceptable) when the client accepts neither.
package media

import "strings"

// The media types of an answer.
const (
	JSON            = "application/json"
	GraphQLResponse = "application/graphql-response+json"
)

// ContentType is the Content-Type header of an answer in media type m (JSON or GraphQLResponse).
func ContentType(m string) string {
	if m == GraphQLResponse {
		return GraphQLResponse + "; charset=utf-8"
	}
	return JSON + "; charset=utf-8"
}

// Negotiate is the media type of the answer to a request with this Accept header, and false
// when the client accepts neither JSON nor GraphQLResponse (in UTF-8). Of the two, the one with
// the higher quality wins; at equal quality, the one listed first; a wildcard (*/* or
// application/*) stands for JSON, as it did before the GraphQL over HTTP specification.
func Negotiate(accept string) (string, bool) {
	switch accept {
	case "", JSON, "*/*":
		return JSON, true
	case GraphQLResponse:
		return GraphQLResponse, true
	}
	// The quality each type gets from the most specific range that names it (RFC 9110 12.5.1),
	// and the position of that range.
	jsonQ, jsonSpec, jsonPos := -1.0, 0, 0
	respQ, respSpec, respPos := -1.0, 0, 0
	pos := 0
	for rest := accept; rest != ""; pos++ {
		var part string
		part, rest, _ = strings.Cut(rest, ",")
		typ, params, _ := strings.Cut(part, ";")
		typ = strings.TrimSpace(typ)
		q, ok := quality(params)
		if !ok {
			continue // a charset other than UTF-8
		}
		var spec int // 3: the type itself, 2: application/*, 1: */*
		switch {
		case strings.EqualFold(typ, GraphQLResponse):
			if respSpec < 3 {
				respQ, respSpec, respPos = q, 3, pos
			}
			continue
		case strings.EqualFold(typ, JSON):
			if jsonSpec < 3 {
				jsonQ, jsonSpec, jsonPos = q, 3, pos
			}
			continue
		case strings.EqualFold(typ, "application/*"):
			spec = 2
		case typ == "*/*":
			spec = 1
		default:
			continue
		}
		if jsonSpec < spec {
			jsonQ, jsonSpec, jsonPos = q, spec, pos
		}
		if respSpec < spec {
			// A wildcard offers application/json first: it reaches the other type only below it.
			respQ, respSpec, respPos = q, spec, pos+1
		}
	}
	switch {
	case respQ > 0 && (respQ > jsonQ || respQ == jsonQ && respPos < jsonPos):
		return GraphQLResponse, true
	case jsonQ > 0:
		return JSON, true
	}
	return "", false
}

// quality reads a media range's parameters: its q (1 when absent) and whether its charset, if
// any, is UTF-8.
func quality(params string) (q float64, ok bool) {
	q = 1
	for params != "" {
		var p string
		p, params, _ = strings.Cut(params, ";")
		name, value, _ := strings.Cut(p, "=")
		name, value = strings.TrimSpace(name), strings.Trim(strings.TrimSpace(value), `"`)
		switch {
		case strings.EqualFold(name, "q"):
			q = parseQ(value)
		case strings.EqualFold(name, "charset"):
			if !strings.EqualFold(value, "utf-8") && !strings.EqualFold(value, "utf8") {
				return 0, false
			}
		}
	}
	return q, true
}

// parseQ reads a qvalue (0, 1, or 0.xxx); a malformed one counts as 1, as most servers take it.
func parseQ(s string) float64 {
	if s == "" {
		return 1
	}
	switch s[0] {
	case '0':
		v, scale := 0.0, 0.1
		if len(s) > 1 && s[1] == '.' {
			for _, c := range s[2:] {
				if c < '0' || c > '9' {
					break
				}
				v += float64(c-'0') * scale
				scale /= 10
			}
		}
		return v
	case '1':
		return 1
	}
	return 1
}
