package consul_test

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/spotmax/spotmax/pkg/consul"
	"github.com/spotmax/spotmax/pkg/consul/consultest"
)

// These tests run a real Consul agent (v1.15.4).

func TestWithdrawDeregistersEveryService(t *testing.T) {
	srv := consultest.Start(t, consultest.Options{})
	srv.Register(t, "web-1", "web")
	srv.Register(t, "api-1", "api")
	ctx := context.Background()
	a, err := consul.NewAgent(consul.Options{Address: srv.Addr})
	if err != nil {
		t.Fatal(err)
	}
	res, err := a.Withdraw(ctx)
	if err != nil {
		t.Fatalf("Withdraw: %v", err)
	}
	if got := strings.Join(res.Services, ","); got != "api-1,web-1" || res.Mode != consul.ModeDeregister {
		t.Errorf("Withdraw = %+v, want api-1 and web-1 deregistered", res)
	}
	if left := srv.Services(t); len(left) != 0 {
		t.Errorf("services still registered: %v", left)
	}
	if n := srv.Passing(t, "web"); n != 0 {
		t.Errorf("web has %d passing instances after the withdrawal, want 0", n)
	}
	// Idempotent: the second run (the controller after the agent) finds nothing to do.
	res, err = a.Withdraw(ctx)
	if err != nil || len(res.Services) != 0 {
		t.Errorf("second Withdraw = %+v, %v; want nothing done, no error", res, err)
	}
}

func TestWithdrawNothingRegistered(t *testing.T) {
	srv := consultest.Start(t, consultest.Options{})
	a, _ := consul.NewAgent(consul.Options{Address: "http://" + srv.Addr})
	res, err := a.Withdraw(context.Background())
	if err != nil || len(res.Services) != 0 {
		t.Errorf("Withdraw on an agent without services = %+v, %v; want nothing, no error", res, err)
	}
}

func TestWithdrawMaintenanceMode(t *testing.T) {
	srv := consultest.Start(t, consultest.Options{})
	srv.Register(t, "web-1", "web")
	if n := srv.Passing(t, "web"); n != 1 {
		t.Fatalf("web has %d passing instances before, want 1", n)
	}
	ctx := context.Background()
	a, _ := consul.NewAgent(consul.Options{Address: srv.Addr, Mode: consul.ModeMaintenance, Reason: "spotmax test"})
	res, err := a.Withdraw(ctx)
	if err != nil || strings.Join(res.Services, ",") != "web-1" {
		t.Fatalf("Withdraw(maintenance) = %+v, %v", res, err)
	}
	if n := srv.Passing(t, "web"); n != 0 {
		t.Errorf("web has %d passing instances in maintenance mode, want 0", n)
	}
	if got := srv.Services(t); len(got) != 1 {
		t.Errorf("maintenance mode must keep the registrations, have %v", got)
	}
	if on, err := a.InMaintenance(ctx); err != nil || !on {
		t.Errorf("InMaintenance = %v, %v; want true", on, err)
	}
	if _, err := a.Withdraw(ctx); err != nil {
		t.Errorf("second Withdraw(maintenance): %v", err)
	}
}

func TestWithdrawUnreachable(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens there now
	a, _ := consul.NewAgent(consul.Options{Address: addr, Timeout: time.Second})
	_, err = a.Withdraw(context.Background())
	if !errors.Is(err, consul.ErrUnreachable) || !strings.Contains(err.Error(), addr) {
		t.Errorf("Withdraw on a closed port: error = %v, want ErrUnreachable naming %s", err, addr)
	}
}

func TestWithdrawACL(t *testing.T) {
	srv := consultest.Start(t, consultest.Options{ACL: true})
	srv.Register(t, "web-1", "web")
	ctx := context.Background()
	for name, token := range map[string]string{
		"no token":    "",
		"wrong token": "00000000-1111-2222-3333-444444444444",
		"read only":   srv.CreateToken(t, "read-only", `service_prefix "" { policy = "read" }`),
	} {
		t.Run(name, func(t *testing.T) {
			t.Setenv("CONSUL_HTTP_TOKEN", "")
			a, _ := consul.NewAgent(consul.Options{Address: srv.Addr, Token: token})
			_, err := a.Withdraw(ctx)
			if !errors.Is(err, consul.ErrPermission) {
				t.Errorf("Withdraw with %s: error = %v, want ErrPermission", name, err)
			}
			if got := srv.Services(t); len(got) != 1 {
				t.Errorf("services after a refused withdrawal: %v, want web-1 kept", got)
			}
		})
	}
	// A token with service:write on every service does it.
	tok := srv.CreateToken(t, "deregister", `service_prefix "" { policy = "write" }`)
	a, _ := consul.NewAgent(consul.Options{Address: srv.Addr, Token: tok})
	if res, err := a.Withdraw(ctx); err != nil || len(res.Services) != 1 {
		t.Errorf("Withdraw with a service:write token = %+v, %v", res, err)
	}
}
