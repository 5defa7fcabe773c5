package groupconfig

import "testing"

func TestParseIgnoresStateTags(t *testing.T) {
	tags := []Tag{
		{Key: TagGroup, Value: "web", PropagateAtLaunch: true},
		{Key: StateGroupMaxSize, Value: "4"},
		{Key: StatePrefix + "anything_new", Value: "x"},
	}
	cfg, err := Parse("web", tags)
	if err != nil {
		t.Fatalf("Parse with progress tags: %v", err)
	}
	for _, tag := range cfg.Tags() {
		if tag.Key == StateGroupMaxSize {
			t.Errorf("Tags() rendered progress tag %s", tag.Key)
		}
	}
	// A near miss of the prefix is still a mistake worth reporting.
	if _, err := Parse("web", []Tag{{Key: "spotmax:stat:max_size", Value: "4"}}); err == nil {
		t.Error("Parse accepted spotmax:stat:max_size")
	}
}
