package cloudwatch_test

import (
	"context"
	"errors"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch/types"

	"github.com/spotmax/spotmax/pkg/awsapi"
	"github.com/spotmax/spotmax/pkg/sim"
	"github.com/spotmax/spotmax/pkg/sim/simtest"
)

func TestDashboards(t *testing.T) {
	env := simtest.Start(t, sim.Options{})
	cw := cloudwatch.NewFromConfig(env.Config)
	ctx := context.Background()
	body := `{"widgets":[{"type":"text","properties":{"markdown":"hi"}},` +
		`{"type":"metric","properties":{"metrics":[["SpotMax","VolumeMoved"]],"region":"us-east-1"}}]}`
	out, err := cw.PutDashboard(ctx, &cloudwatch.PutDashboardInput{DashboardName: aws.String("SpotMax-web"), DashboardBody: aws.String(body)})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.DashboardValidationMessages) != 0 {
		t.Errorf("validation messages %+v", out.DashboardValidationMessages)
	}
	got, err := cw.GetDashboard(ctx, &cloudwatch.GetDashboardInput{DashboardName: aws.String("SpotMax-web")})
	if err != nil {
		t.Fatal(err)
	}
	if aws.ToString(got.DashboardBody) != body || aws.ToString(got.DashboardArn) != "arn:aws:cloudwatch::123456789012:dashboard/SpotMax-web" {
		t.Errorf("GetDashboard = %s, %s", aws.ToString(got.DashboardArn), aws.ToString(got.DashboardBody))
	}
	if b, ok := env.Region().Dashboard("SpotMax-web"); !ok || b != body {
		t.Errorf("Region.Dashboard = %q, %v", b, ok)
	}

	for _, c := range []struct{ name, body string }{
		{"bad name", body},
		{"x", `not json`},
		{"x", `{"widget":[]}`},
		{"x", `{"widgets":[{"type":"chart","properties":{}}]}`},
		{"x", `{"widgets":[{"type":"metric","properties":{"metrics":[]}}]}`},
		{"x", `{"widgets":[{"type":"text"}]}`},
	} {
		_, err := cw.PutDashboard(ctx, &cloudwatch.PutDashboardInput{DashboardName: aws.String(c.name), DashboardBody: aws.String(c.body)})
		var invalid *types.DashboardInvalidInputError
		if !errors.As(err, &invalid) {
			t.Errorf("PutDashboard(%q, %s) = %v, want DashboardInvalidInputError", c.name, c.body, err)
		}
	}
	// DashboardNotFoundError and ResourceNotFound share the query error code ResourceNotFound.
	if _, err := cw.GetDashboard(ctx, &cloudwatch.GetDashboardInput{DashboardName: aws.String("nope")}); awsapi.Code(err) != "ResourceNotFound" {
		t.Errorf("GetDashboard of a missing dashboard = %v, want ResourceNotFound", err)
	}
}
