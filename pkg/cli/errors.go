package cli

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"

	"github.com/aws/smithy-go"

	"github.com/spotmax/spotmax/pkg/awsapi"
	"github.com/spotmax/spotmax/pkg/groupconfig"
	"github.com/spotmax/spotmax/pkg/replace"
)

// Exit codes. They are the one mapping from errors to process status; scripts may rely on them.
const (
	ExitOK            = 0
	ExitError         = 1 // any other failure
	ExitUsage         = 2 // bad flags or arguments
	ExitNotFound      = 3 // the group, instance or volume does not exist
	ExitInvalidConfig = 4 // a group's spotmax tags do not validate
	ExitAWSConfig     = 5 // no credentials or no region
	ExitNotManaged    = 6 // the group is not managed by spotmax (no spotmax:group tag, or spotmax:ignore_tag=true)
	ExitBusy          = 7 // another actor is replacing the instance (its journal's lease is held)
	ExitUntrusted     = 8 // a journal names what spotmax did not write there; nothing was done
	ExitCancelled     = 130
)

// FlagError is a usage error: bad flags or arguments.
type FlagError struct{ err error }

func (e *FlagError) Error() string { return e.err.Error() }
func (e *FlagError) Unwrap() error { return e.err }

func flagErrorf(format string, args ...any) error {
	return &FlagError{err: fmt.Errorf(format, args...)}
}

// ConfigError means the AWS configuration is unusable (no region, unknown profile).
type ConfigError struct{ err error }

func (e *ConfigError) Error() string { return e.err.Error() }
func (e *ConfigError) Unwrap() error { return e.err }

// errNoCredentials says where spotmax looked for credentials.
var errNoCredentials = errors.New("no AWS credentials: set AWS_PROFILE or --profile, AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, log in with 'aws sso login', or run with an IAM role")

// ErrCancelled is returned when the user declines a confirmation prompt.
var ErrCancelled = errors.New("cancelled")

// exitCode maps an error to the process exit code.
func exitCode(err error) int {
	var flagErr *FlagError
	var cfgErr *ConfigError
	var valErr *groupconfig.ValidationError
	var nmErr *groupconfig.NotManagedError
	switch {
	case err == nil:
		return ExitOK
	case errors.Is(err, ErrCancelled), errors.Is(err, context.Canceled):
		return ExitCancelled
	case errors.As(err, &flagErr):
		return ExitUsage
	case errors.As(err, &nmErr):
		return ExitNotManaged
	case errors.Is(err, replace.ErrBusy):
		return ExitBusy
	case errors.Is(err, replace.ErrUntrusted):
		return ExitUntrusted
	case errors.As(err, &valErr):
		return ExitInvalidConfig
	case errors.As(err, &cfgErr):
		return ExitAWSConfig
	case awsapi.IsNotFound(err):
		return ExitNotFound
	}
	return ExitError
}

// errorLine renders an error as the one line the user sees: SDK errors lose their operation
// noise, missing credentials say where spotmax looked.
func errorLine(err error) string {
	var op *net.OpError
	var uerr *url.Error
	var sdk *smithy.OperationError
	switch {
	case errors.As(err, &op) && op.Op == "listen":
		// Our own listener (sim serve, --metrics-addr): nothing to do with AWS.
		return fmt.Sprintf("cannot listen on %s: %v", op.Addr, err)
	case awsapi.IsUnreachable(err) && errors.As(err, &sdk):
		return fmt.Sprintf("cannot reach the AWS endpoint (check AWS_ENDPOINT_URL and the network): %v", err)
	case awsapi.IsUnreachable(err) && errors.As(err, &uerr):
		// Not an AWS call (those are smithy operation errors): a Kubernetes API server, Consul, ...
		host := uerr.URL
		if u, perr := url.Parse(uerr.URL); perr == nil && u.Host != "" {
			host = u.Scheme + "://" + u.Host
		}
		return fmt.Sprintf("cannot reach %s (check its address and the network): %v", host, err)
	}
	return err.Error()
}
