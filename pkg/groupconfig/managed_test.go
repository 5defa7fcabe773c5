package groupconfig_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/spotmax/spotmax/pkg/groupconfig"
)

// TestLoadUntaggedGroupHasNoConfig is issue 11 case 5: a group without spotmax:group must not
// get a default configuration, whatever other spotmax tags it carries.
func TestLoadUntaggedGroupHasNoConfig(t *testing.T) {
	for _, tags := range [][]groupconfig.Tag{
		nil,
		{tag("Name", "batch")},
		{tag(groupconfig.TagPersistenceDev, "/dev/sdf"), tag(groupconfig.TagGuaranteeLivingMins, "50")},
	} {
		c, err := groupconfig.Load("batch", tags)
		if c != nil || err != nil {
			t.Errorf("Load(batch, %v) = %+v, %v; want nil, nil", tags, c, err)
		}
		if c.Managed() || groupconfig.IsManaged(tags) {
			t.Errorf("tags %v: managed", tags)
		}
		err = groupconfig.CheckManaged("batch", c)
		var nm *groupconfig.NotManagedError
		if !errors.As(err, &nm) || nm.Group != "batch" || nm.Ignored {
			t.Fatalf("CheckManaged = %v, want a NotManagedError for batch", err)
		}
		for _, want := range []string{`"batch"`, "not managed", groupconfig.TagGroup, "spotmax group tag batch"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error %q lacks %q", err, want)
			}
		}
	}
}

func TestLoadTaggedGroup(t *testing.T) {
	c, err := groupconfig.Load("web", []groupconfig.Tag{ptag(groupconfig.TagGroup, "web")})
	if err != nil || c == nil || !c.Managed() || groupconfig.CheckManaged("web", c) != nil {
		t.Fatalf("Load(web) = %+v, %v; want a managed default configuration", c, err)
	}
	_, err = groupconfig.Load("web", []groupconfig.Tag{ptag(groupconfig.TagGroup, "web"), tag(groupconfig.TagBufferMins, "x")})
	var verr *groupconfig.ValidationError
	if !errors.As(err, &verr) {
		t.Errorf("Load of an invalid tagged group: %v, want a ValidationError", err)
	}
	tags := []groupconfig.Tag{ptag(groupconfig.TagGroup, "web"), tag(groupconfig.TagIgnore, "true")}
	c, err = groupconfig.Load("web", tags)
	if err != nil || c.Managed() || groupconfig.IsManaged(tags) != c.Managed() {
		t.Fatalf("ignored group: %+v, %v; want parsed and not managed", c, err)
	}
	err = groupconfig.CheckManaged("web", c)
	var nm *groupconfig.NotManagedError
	if !errors.As(err, &nm) || !nm.Ignored || !strings.Contains(err.Error(), groupconfig.TagIgnore) {
		t.Errorf("CheckManaged of an ignored group = %v", err)
	}
}
