package sim

import (
	"encoding/json"
)

// CloudWatch dashboards: PutDashboard and GetDashboard, with the body checks that matter to a
// client (a JSON object with a widgets list of typed widgets). This file's init runs after
// cloudwatch.go's (Go runs a package's files' init functions in file-name order), so the
// monitoring service is registered when it extends it.
func init() {
	s := services["monitoring"]
	setup := s.setup
	s.setup = func(r *Region) {
		setup(r)
		r.svc[dashboardsKey] = map[string]string{}
	}
	s.errorShapes["InvalidParameterInput"] = "DashboardInvalidInputError"
	cwActions["PutDashboard"] = (*Region).cwPutDashboard
	cwActions["GetDashboard"] = (*Region).cwGetDashboard
}

const dashboardsKey = "monitoring:dashboards"

var dashboardName = lazyRegexp(`^[A-Za-z0-9_-]{1,255}$`)

var widgetTypes = map[string]bool{"metric": true, "text": true, "log": true, "alarm": true, "explorer": true}

func (r *Region) dashboards() map[string]string { return r.svc[dashboardsKey].(map[string]string) }

// Dashboard returns the body of a dashboard that PutDashboard stored.
func (r *Region) Dashboard(name string) (string, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	b, ok := r.dashboards()[name]
	return b, ok
}

func (r *Region) dashboardARN(name string) string {
	return "arn:aws:cloudwatch::" + r.opts.AccountID + ":dashboard/" + name
}

func (r *Region) cwPutDashboard(in cwDoc) (cwDoc, *APIError) {
	name, body := docStr(in, "DashboardName"), docStr(in, "DashboardBody")
	switch {
	case name == "":
		return nil, cwMissing("DashboardName")
	case body == "":
		return nil, cwMissing("DashboardBody")
	case !dashboardName().MatchString(name):
		return nil, errf("InvalidParameterInput", "The value %s for parameter DashboardName is invalid: use 1 to 255 letters, digits, - and _.", name)
	}
	var doc struct {
		Widgets *[]struct {
			Type       string                     `json:"type"`
			Properties map[string]json.RawMessage `json:"properties"`
		} `json:"widgets"`
	}
	if err := json.Unmarshal([]byte(body), &doc); err != nil {
		return nil, errf("InvalidParameterInput", "The field DashboardBody must be a valid JSON object: %v", err)
	}
	if doc.Widgets == nil {
		return nil, errf("InvalidParameterInput", "The dashboard body is invalid, there are 1 validation errors: should have required property 'widgets'")
	}
	for i, w := range *doc.Widgets {
		if !widgetTypes[w.Type] {
			return nil, errf("InvalidParameterInput", "The dashboard body is invalid: widgets[%d].type %q is not one of metric, text, log, alarm, explorer", i, w.Type)
		}
		if w.Properties == nil {
			return nil, errf("InvalidParameterInput", "The dashboard body is invalid: widgets[%d] should have required property 'properties'", i)
		}
		if w.Type == "metric" {
			var metrics [][]any
			if err := json.Unmarshal(w.Properties["metrics"], &metrics); err != nil || len(metrics) == 0 {
				return nil, errf("InvalidParameterInput", "The dashboard body is invalid: widgets[%d].properties.metrics should be a non-empty array of arrays", i)
			}
		}
	}
	r.dashboards()[name] = body
	return cwDoc{"DashboardValidationMessages": []any{}}, nil
}

func (r *Region) cwGetDashboard(in cwDoc) (cwDoc, *APIError) {
	name := docStr(in, "DashboardName")
	if name == "" {
		return nil, cwMissing("DashboardName")
	}
	body, ok := r.dashboards()[name]
	if !ok {
		return nil, errf("ResourceNotFound", "Dashboard %s does not exist", name)
	}
	return cwDoc{"DashboardName": name, "DashboardBody": body, "DashboardArn": r.dashboardARN(name)}, nil
}
