package cli

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/spotmax/spotmax/pkg/sim"
	"github.com/spotmax/spotmax/pkg/sim/simtest"
)

// imdsRecorder relays requests to an instance's simulated IMDS and records them. With
// forwarded set it adds X-Forwarded-For, as an HTTP proxy does: IMDS then refuses the token
// request with 403, which is when the SDK's default client falls back to IMDSv1.
type imdsRecorder struct {
	mu       sync.Mutex
	requests []string // "METHOD path token=yes|no"
}

func (r *imdsRecorder) start(t *testing.T, target string, forwarded bool) string {
	t.Helper()
	u, _ := url.Parse("http://" + target)
	proxy := &httputil.ReverseProxy{Rewrite: func(pr *httputil.ProxyRequest) {
		pr.SetURL(u)
		if forwarded {
			pr.SetXForwarded()
		}
	}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		tok := "no"
		if req.Header.Get("X-Aws-Ec2-Metadata-Token") != "" {
			tok = "yes"
		}
		r.mu.Lock()
		r.requests = append(r.requests, req.Method+" "+req.URL.Path+" token="+tok)
		r.mu.Unlock()
		proxy.ServeHTTP(w, req)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// TestFactoryUsesIMDSv2Only is issue 11 case 9: when credentials come from the instance's role,
// the CLI and controller talk to IMDS with a token only — never IMDSv1, even when the token
// request is refused (here by the simulated IMDS's 403 to a proxied token request).
func TestFactoryUsesIMDSv2Only(t *testing.T) {
	env := simtest.Start(t, sim.Options{IMDS: true})
	ids := env.CreateGroup(t, simtest.GroupSpec{Name: "web", Desired: 1})
	in, _ := env.Region().Instance(ids[0])
	if in.IMDSAddr == "" {
		t.Fatal("the simulated instance has no IMDS endpoint")
	}
	for _, forwarded := range []bool{false, true} {
		rec := &imdsRecorder{}
		t.Setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", rec.start(t, in.IMDSAddr, forwarded))
		t.Setenv("AWS_EC2_METADATA_DISABLED", "")
		t.Setenv("AWS_REGION", env.Region().Name())
		t.Setenv("AWS_ACCESS_KEY_ID", "")
		t.Setenv("AWS_SECRET_ACCESS_KEY", "")
		t.Setenv("AWS_SESSION_TOKEN", "")
		t.Setenv("AWS_PROFILE", "")
		t.Setenv("AWS_WEB_IDENTITY_TOKEN_FILE", "")
		t.Setenv("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "")
		t.Setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", "")
		t.Setenv("AWS_CONFIG_FILE", filepath.Join(t.TempDir(), "none"))
		t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(t.TempDir(), "none"))

		ios, _, _, _ := Test()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		_, err := NewFactory(ios).AWSConfig(ctx)
		cancel()
		var cfgErr *ConfigError
		if !errors.As(err, &cfgErr) || !errors.Is(err, errNoCredentials) {
			// The simulated IMDS has no role credentials: the chain must end with no credentials.
			t.Errorf("forwarded=%v: AWSConfig error %v, want no credentials", forwarded, err)
		}
		rec.mu.Lock()
		reqs := append([]string(nil), rec.requests...)
		rec.mu.Unlock()
		if len(reqs) == 0 || reqs[0] != "PUT /latest/api/token token=no" {
			t.Errorf("forwarded=%v: IMDS requests %v, want a token request first", forwarded, reqs)
		}
		got := false
		for _, r := range reqs[min(1, len(reqs)):] {
			if r == "PUT /latest/api/token token=no" {
				continue
			}
			got = true
			if r[len(r)-len("token=no"):] == "token=no" {
				t.Errorf("forwarded=%v: IMDSv1 request %q (all: %v)", forwarded, r, reqs)
			}
		}
		if !forwarded && !got {
			t.Errorf("with a token, no metadata was asked for: %v", reqs)
		}
	}
}
