package cloudwatch

import (
	"encoding/json"

	"github.com/spotmax/spotmax/pkg/sim/awsproto"
)

// CloudWatch dashboards: PutDashboard and GetDashboard, with the body checks that matter to a
// client (a JSON object with a widgets list of typed widgets).

var dashboardName = awsproto.LazyRegexp(`^[A-Za-z0-9_-]{1,255}$`)

var widgetTypes = map[string]bool{"metric": true, "text": true, "log": true, "alarm": true, "explorer": true}

// Dashboard returns the body of a dashboard that PutDashboard stored.
func (svc *Service) Dashboard(name string) (string, bool) {
	svc.region.Lock()
	defer svc.region.Unlock()
	b, ok := svc.dashboards[name]
	return b, ok
}

func (svc *Service) dashboardARN(name string) string {
	return "arn:aws:cloudwatch::" + svc.region.AccountID() + ":dashboard/" + name
}

func (svc *Service) cwPutDashboard(in awsproto.Document) (awsproto.Document, *awsproto.APIError) {
	name, body := awsproto.DocStr(in, "DashboardName"), awsproto.DocStr(in, "DashboardBody")
	switch {
	case name == "":
		return nil, cwMissing("DashboardName")
	case body == "":
		return nil, cwMissing("DashboardBody")
	case !dashboardName().MatchString(name):
		return nil, awsproto.Errorf("InvalidParameterInput", "The value %s for parameter DashboardName is invalid: use 1 to 255 letters, digits, - and _.", name)
	}
	var doc struct {
		Widgets *[]struct {
			Type       string                     `json:"type"`
			Properties map[string]json.RawMessage `json:"properties"`
		} `json:"widgets"`
	}
	if err := json.Unmarshal([]byte(body), &doc); err != nil {
		return nil, awsproto.Errorf("InvalidParameterInput", "The field DashboardBody must be a valid JSON object: %v", err)
	}
	if doc.Widgets == nil {
		return nil, awsproto.Errorf("InvalidParameterInput", "The dashboard body is invalid, there are 1 validation errors: should have required property 'widgets'")
	}
	for i, w := range *doc.Widgets {
		if !widgetTypes[w.Type] {
			return nil, awsproto.Errorf("InvalidParameterInput", "The dashboard body is invalid: widgets[%d].type %q is not one of metric, text, log, alarm, explorer", i, w.Type)
		}
		if w.Properties == nil {
			return nil, awsproto.Errorf("InvalidParameterInput", "The dashboard body is invalid: widgets[%d] should have required property 'properties'", i)
		}
		if w.Type == "metric" {
			var metrics [][]any
			if err := json.Unmarshal(w.Properties["metrics"], &metrics); err != nil || len(metrics) == 0 {
				return nil, awsproto.Errorf("InvalidParameterInput", "The dashboard body is invalid: widgets[%d].properties.metrics should be a non-empty array of arrays", i)
			}
		}
	}
	svc.dashboards[name] = body
	return awsproto.Document{"DashboardValidationMessages": []any{}}, nil
}

func (svc *Service) cwGetDashboard(in awsproto.Document) (awsproto.Document, *awsproto.APIError) {
	name := awsproto.DocStr(in, "DashboardName")
	if name == "" {
		return nil, cwMissing("DashboardName")
	}
	body, ok := svc.dashboards[name]
	if !ok {
		return nil, awsproto.Errorf("ResourceNotFound", "Dashboard %s does not exist", name)
	}
	return awsproto.Document{"DashboardName": name, "DashboardBody": body, "DashboardArn": svc.dashboardARN(name)}, nil
}
