package aramaki

import (
	"errors"
	"fmt"
)

// Error codes. They are part of the API: clients match on them, and the HTTP
// adapter maps each to exactly one status.
const (
	EINVALID        = "invalid"      // the request or input is malformed or fails validation
	EUNAUTHORIZED   = "unauthorized" // no or bad credentials
	EFORBIDDEN      = "forbidden"    // authenticated, but not allowed
	ENOTFOUND       = "not_found"    // no such thing (or not visible to the caller)
	ECONFLICT       = "conflict"     // the thing exists already or changed underneath
	ETOOLARGE       = "too_large"    // the input exceeds a size limit
	EUNAVAILABLE    = "unavailable"  // a dependency (database, repository) cannot be reached
	EINTERNAL       = "internal"     // a bug or an unexpected failure; details are logged, not shown
	ENOTIMPLEMENTED = "not_implemented"
)

// Error is the application error: a machine code and a message that is safe
// to show to the user. Internal causes are wrapped with fmt.Errorf("...: %w")
// around it or stand alone; ErrorCode and ErrorMessage see through wrapping.
type Error struct {
	Code    string
	Message string
}

func (e *Error) Error() string {
	return fmt.Sprintf("aramaki error: code=%s message=%s", e.Code, e.Message)
}

// Errorf returns an *Error with the given code and a formatted, user-safe message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// ErrorCode returns the code of the application error in err's chain, or
// EINTERNAL when err is not nil and carries none.
func ErrorCode(err error) string {
	var e *Error
	if err == nil {
		return ""
	} else if errors.As(err, &e) {
		return e.Code
	}
	return EINTERNAL
}

// ErrorMessage returns the user-safe message of the application error in
// err's chain, or a generic message for internal errors.
func ErrorMessage(err error) string {
	var e *Error
	if err == nil {
		return ""
	} else if errors.As(err, &e) {
		return e.Message
	}
	return "internal error"
}
