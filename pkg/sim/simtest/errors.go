package simtest

import (
	"errors"

	"github.com/aws/smithy-go"
)

// ErrorCode returns the AWS error code of an SDK error ("" when err is not an AWS API error), for
// tests that assert which error a simulated service answered.
func ErrorCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}
