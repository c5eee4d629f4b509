package logging

import (
	"bytes"
	"strings"
	"testing"

	"github.com/senderkit/senderkit/conf"
)

func TestLevelsFollowConfig(t *testing.T) {
	var b bytes.Buffer
	s := New(&b, "text")
	s.Apply(conf.Log{Level: "info", Levels: map[string]string{"milter": "debug"}})
	m, p := s.For("milter"), s.For("policy")
	m.Debug("m1")
	p.Debug("p1")
	p.Info("p2", "queue_id", "4XyZ")
	out := b.String()
	if !strings.Contains(out, "msg=m1") || strings.Contains(out, "msg=p1") || !strings.Contains(out, "msg=p2 component=policy queue_id=4XyZ") {
		t.Fatalf("before reload:\n%s", out)
	}
	b.Reset()
	s.Apply(conf.Log{Level: "debug"}) // a reload drops the milter override and lowers the default
	m.Debug("m2")
	p.Debug("p3")
	s.Apply(conf.Log{Level: "error"})
	m.Warn("m3")
	out = b.String()
	if !strings.Contains(out, "msg=m2") || !strings.Contains(out, "msg=p3") || strings.Contains(out, "msg=m3") {
		t.Fatalf("after reload:\n%s", out)
	}
	b.Reset()
	New(&b, "json").For("store").Info("x")
	if !strings.HasPrefix(b.String(), "{") || !strings.Contains(b.String(), `"component":"store"`) {
		t.Errorf("json: %s", b.String())
	}
}
