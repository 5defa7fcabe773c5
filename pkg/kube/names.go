package kube

import (
	"fmt"
	"regexp"
)

// The API's rules for object names (apimachinery's validation, same messages): namespaces are
// RFC 1123 labels, most other names (Leases among them) RFC 1123 subdomains.
const (
	dns1123LabelFmt     = "[a-z0-9]([-a-z0-9]*[a-z0-9])?"
	dns1123SubdomainFmt = dns1123LabelFmt + "(\\." + dns1123LabelFmt + ")*"
)

var (
	dns1123Label     = regexp.MustCompile("^" + dns1123LabelFmt + "$")
	dns1123Subdomain = regexp.MustCompile("^" + dns1123SubdomainFmt + "$")
)

// ValidNamespace returns what is wrong with a namespace name (an RFC 1123 label), or nil.
func ValidNamespace(s string) []string {
	var errs []string
	if len(s) > 63 {
		errs = append(errs, "must be no more than 63 characters")
	}
	if !dns1123Label.MatchString(s) {
		errs = append(errs, fmt.Sprintf("a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '%s')", dns1123LabelFmt))
	}
	return errs
}

// ValidName returns what is wrong with an object name (an RFC 1123 subdomain), or nil.
func ValidName(s string) []string {
	var errs []string
	if len(s) > 253 {
		errs = append(errs, "must be no more than 253 characters")
	}
	if !dns1123Subdomain.MatchString(s) {
		errs = append(errs, fmt.Sprintf("a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '%s')", dns1123SubdomainFmt))
	}
	return errs
}
