package sim

import (
	"encoding/json"
	"net/http"
)

// controlHandler serves the control API under /_sim/: listing state and injecting faults. It is
// for tests and demos, never for spotmax itself.
func (r *Region) controlHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /_sim/instances", func(w http.ResponseWriter, _ *http.Request) {
		writeControlJSON(w, r.Instances())
	})
	mux.HandleFunc("GET /_sim/calls", func(w http.ResponseWriter, _ *http.Request) {
		writeControlJSON(w, r.Calls())
	})
	return mux
}

func writeControlJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}
