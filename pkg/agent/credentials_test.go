package agent

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/spotmax/spotmax/pkg/imds"
)

// The instance role's credentials come from IMDS too: they are fetched with IMDSv2 session
// tokens only, even when the environment allows IMDSv1 (AWS_EC2_METADATA_V1_DISABLED=false).
func TestInstanceRoleCredentialsIMDSv2Only(t *testing.T) {
	for _, env := range []string{"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
		"AWS_EC2_METADATA_DISABLED", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI",
		"AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ROLE_ARN", "AWS_ENDPOINT_URL"} {
		t.Setenv(env, "")
	}
	t.Setenv("AWS_CONFIG_FILE", "/nonexistent")
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
	t.Setenv("AWS_EC2_METADATA_V1_DISABLED", "false")
	for _, v2 := range []bool{true, false} {
		var mu sync.Mutex
		tokenless := 0
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodPut && r.URL.Path == "/latest/api/token" {
				if !v2 {
					w.WriteHeader(http.StatusForbidden) // an endpoint without a usable token API
					return
				}
				w.Header().Set("X-aws-ec2-metadata-token-ttl-seconds", "21600")
				_, _ = w.Write([]byte("token"))
				return
			}
			if r.Header.Get("X-aws-ec2-metadata-token") == "" {
				mu.Lock()
				tokenless++
				mu.Unlock()
				if v2 {
					w.WriteHeader(http.StatusUnauthorized)
					return
				}
			}
			switch r.URL.Path {
			case "/latest/meta-data/iam/security-credentials/":
				_, _ = w.Write([]byte("node-role"))
			case "/latest/meta-data/iam/security-credentials/node-role":
				_ = json.NewEncoder(w).Encode(map[string]string{"Code": "Success", "Type": "AWS-HMAC",
					"AccessKeyId": "ASIAROLE", "SecretAccessKey": "secret", "Token": "session",
					"Expiration": time.Now().Add(time.Hour).UTC().Format(time.RFC3339), "LastUpdated": time.Now().UTC().Format(time.RFC3339)})
			default:
				http.NotFound(w, r)
			}
		}))
		l := &lazyEC2{region: "us-east-1", imds: imds.New(imds.Options{Endpoint: srv.URL})}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		cfg, err := l.config(ctx)
		if err != nil {
			t.Fatal(err)
		}
		creds, err := cfg.Credentials.Retrieve(ctx)
		cancel()
		srv.Close()
		mu.Lock()
		n := tokenless
		mu.Unlock()
		switch {
		case v2 && (err != nil || creds.AccessKeyID != "ASIAROLE"):
			t.Errorf("IMDSv2: instance role credentials = %q, %v; want ASIAROLE", creds.AccessKeyID, err)
		case !v2 && err == nil:
			t.Errorf("IMDSv1-only endpoint: credentials %q were fetched without a session token", creds.AccessKeyID)
		}
		if n != 0 {
			t.Errorf("v2 %v: %d tokenless (IMDSv1) requests for credentials, want none", v2, n)
		}
	}
}
