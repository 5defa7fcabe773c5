package imds_test

import (
	"context"
	"io"
	"net/http"
	"testing"

	sdk "github.com/aws/aws-sdk-go-v2/feature/ec2/imds"

	"github.com/spotmax/spotmax/pkg/imds"
	"github.com/spotmax/spotmax/pkg/imds/imdstest"
)

// BenchmarkPoll is the cost of one poll of spot/instance-action (a 404 until a notice), the
// request the agent makes most: through the client (its lean path), through the AWS SDK's IMDS
// client (the path before it), and as a bare net/http IMDSv2 GET for comparison.
func BenchmarkPoll(b *testing.B) {
	m := imdstest.Start(b, never(imdstest.Options{V2Only: true}))
	ctx := context.Background()
	b.Run("client", func(b *testing.B) {
		c := imds.New(imds.Options{Endpoint: m.URL})
		b.ReportAllocs()
		for b.Loop() {
			_, _ = c.Get(ctx, "spot/instance-action")
		}
	})
	b.Run("sdk", func(b *testing.B) {
		c := imds.New(imds.Options{Endpoint: m.URL}).SDK()
		b.ReportAllocs()
		for b.Loop() {
			if out, err := c.GetMetadata(ctx, &sdk.GetMetadataInput{Path: "spot/instance-action"}); err == nil {
				_, _ = io.Copy(io.Discard, out.Content)
				out.Content.Close()
			}
		}
	})
	b.Run("bare-http", func(b *testing.B) {
		req, _ := http.NewRequest(http.MethodPut, m.URL+"/latest/api/token", nil)
		req.Header.Set("X-aws-ec2-metadata-token-ttl-seconds", "300")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		tok, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		b.ReportAllocs()
		for b.Loop() {
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, m.URL+"/latest/meta-data/spot/instance-action", nil)
			req.Header.Set("X-aws-ec2-metadata-token", string(tok))
			resp, err := http.DefaultClient.Do(req)
			if err == nil {
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		}
	})
}
