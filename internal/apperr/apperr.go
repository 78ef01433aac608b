// Package apperr defines the errors a client is shown (its own faults, and the few conditions it
// must act on), as values the domain packages return and the GraphQL error presenter turns into a
// stable extensions.code. Anything that is not an *Error is an internal fault: logged in full,
// shown to the client only as INTERNAL_SERVER_ERROR.
package apperr

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// Code is the stable, client-visible kind of an error (extensions.code).
type Code string

// The codes a client can see. Clients switch on them, so they never change meaning.
const (
	BadUserInput Code = "BAD_USER_INPUT"
	NotFound     Code = "NOT_FOUND"
	Conflict     Code = "CONFLICT"
	// Unauthenticated: the operation needs a valid token and has none.
	Unauthenticated Code = "UNAUTHENTICATED"
	// Forbidden: the token is valid but may not do this.
	Forbidden Code = "FORBIDDEN"
	// Timeout: the operation ran past its deadline.
	Timeout Code = "TIMEOUT"
	// Unavailable: the database cannot be reached right now; try again.
	Unavailable Code = "SERVICE_UNAVAILABLE"
	// EventsDropped: a subscription ended because events it should have had were lost; subscribe
	// again and refetch what the events would have changed.
	EventsDropped Code = "EVENTS_DROPPED"
	// OutcomeUnknown: a write was sent but its answer never came (deadline, broken connection):
	// it may or may not have been applied. Check before writing again.
	OutcomeUnknown Code = "OUTCOME_UNKNOWN"
	// TooManySubscriptions: a subscribe over the limit of its connection (complete one, or open
	// another connection) or of the instance (try again later); refused before it ran.
	TooManySubscriptions Code = "TOO_MANY_SUBSCRIPTIONS"
	Internal             Code = "INTERNAL_SERVER_ERROR"
)

// Error is a fault the client caused. Message is safe to show; Field names the offending input
// field (a GraphQL argument or input field name) when there is one.
type Error struct {
	Code    Code
	Field   string
	Message string
}

func (e *Error) Error() string {
	if e.Field != "" {
		return string(e.Code) + ": " + e.Field + ": " + e.Message
	}
	return string(e.Code) + ": " + e.Message
}

// Is makes errors.Is(err, apperr.ErrNotFound) and friends match any *Error of the same code.
func (e *Error) Is(target error) bool {
	var t *Error
	if !errors.As(target, &t) {
		return false
	}
	return t.Code == e.Code && (t.Field == "" || t.Field == e.Field)
}

// Sentinels for errors.Is; they match every error of their code whatever its field or message.
var (
	ErrInvalid         = &Error{Code: BadUserInput}
	ErrNotFound        = &Error{Code: NotFound}
	ErrConflict        = &Error{Code: Conflict}
	ErrUnauthenticated = &Error{Code: Unauthenticated}
	ErrForbidden       = &Error{Code: Forbidden}
)

// Invalid reports bad input in field.
func Invalid(field, message string) *Error {
	return &Error{Code: BadUserInput, Field: field, Message: message}
}

// Missing reports that the thing a write names does not exist.
func Missing(message string) *Error {
	return &Error{Code: NotFound, Message: message}
}

// Taken reports that a unique field's value is already used.
func Taken(field, message string) *Error {
	return &Error{Code: Conflict, Field: field, Message: message}
}

// NotAuthenticated reports a missing or refused token.
func NotAuthenticated(message string) *Error {
	return &Error{Code: Unauthenticated, Message: message}
}

// NotAllowed reports a valid token acting beyond its rights.
func NotAllowed(message string) *Error {
	return &Error{Code: Forbidden, Message: message}
}

// CheckText rejects text PostgreSQL cannot store or that is longer than max characters
// (max <= 0: no limit): invalid UTF-8 and NUL bytes.
func CheckText(field, s string, max int) error {
	if !utf8.ValidString(s) || strings.IndexByte(s, 0) >= 0 {
		return Invalid(field, "must be valid UTF-8 text without NUL characters")
	}
	if max > 0 && utf8.RuneCountInString(s) > max {
		return Invalid(field, fmt.Sprintf("must be at most %d characters", max))
	}
	return nil
}
