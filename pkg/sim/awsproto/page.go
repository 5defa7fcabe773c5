package awsproto

import (
	"encoding/base64"
	"strconv"
)

// Page returns the window of n items that a request asks for with its maxResults and nextToken,
// and the token for the following page ("" on the last page). Tokens are opaque to clients.
func Page(n int, maxResults int64, token string, defaultMax, limit int64) (start, end int, next string, err *APIError) {
	if maxResults <= 0 {
		maxResults = defaultMax
	}
	if limit > 0 && maxResults > limit {
		maxResults = limit
	}
	if token != "" {
		b, e := base64.RawURLEncoding.DecodeString(token)
		off, e2 := strconv.Atoi(string(b))
		if e != nil || e2 != nil || off < 0 || off > n {
			return 0, 0, "", Errorf("InvalidNextToken", "The token '%s' is invalid.", token)
		}
		start = off
	}
	end = start + int(maxResults)
	if end >= n {
		return start, n, "", nil
	}
	return start, end, base64.RawURLEncoding.EncodeToString([]byte(strconv.Itoa(end))), nil
}
