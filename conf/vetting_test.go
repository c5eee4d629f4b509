package conf

import (
	"strings"
	"testing"
	"time"
	_ "time/tzdata" // the zones below, whatever the machine has
)

func warmupConfig(t *testing.T, extra string) *Config {
	t.Helper()
	c, err := Parse([]byte(`state_dir = "/srv/senderkit"
[[scope]]
name = "acme"
sender_domains = ["acme.example"]
[[scope]]
name = "globex"
sender_domains = ["globex.example"]
`+extra), "test.toml")
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// Warm-up days are calendar days in the warm-up's zone: Berlin's
// spring-forward day (2026-03-29) lasts 23 hours and its fall-back day
// (2026-10-25) 25, and each is one day of the schedule.
func TestWarmupDaysAcrossDST(t *testing.T) {
	c := warmupConfig(t, `
[[warmup]]
name = "spring"
scope = "acme"
start = "2026-03-28"
schedule = [10, 20, 40]
time_zone = "Europe/Berlin"
[[warmup]]
name = "autumn"
scope = "globex"
start = "2026-10-24"
schedule = [10, 20, 40]
time_zone = "Europe/Berlin"
`)
	berlin, _ := time.LoadLocation("Europe/Berlin")
	at := func(s string) time.Time {
		tm, err := time.ParseInLocation("2006-01-02 15:04", s, berlin)
		if err != nil {
			t.Fatal(err)
		}
		return tm
	}
	spring, autumn := &c.Warmups[0], &c.Warmups[1]
	for _, tc := range []struct {
		w       *Warmup
		at      time.Time
		day     string // the day's start, Berlin time
		n       int
		next    string
		dayLong time.Duration
	}{
		{spring, at("2026-03-27 23:59"), "2026-03-27 00:00", -1, "2026-03-28 00:00", 24 * time.Hour},
		{spring, at("2026-03-28 00:00"), "2026-03-28 00:00", 0, "2026-03-29 00:00", 24 * time.Hour},
		{spring, at("2026-03-29 01:59"), "2026-03-29 00:00", 1, "2026-03-30 00:00", 23 * time.Hour},
		{spring, at("2026-03-29 03:00"), "2026-03-29 00:00", 1, "2026-03-30 00:00", 23 * time.Hour}, // 02:00 became 03:00
		{spring, at("2026-03-29 23:59"), "2026-03-29 00:00", 1, "2026-03-30 00:00", 23 * time.Hour},
		{spring, at("2026-03-30 00:00"), "2026-03-30 00:00", 2, "2026-03-31 00:00", 24 * time.Hour},
		{autumn, at("2026-10-25 02:30"), "2026-10-25 00:00", 1, "2026-10-26 00:00", 25 * time.Hour},
		{autumn, at("2026-10-25 23:59"), "2026-10-25 00:00", 1, "2026-10-26 00:00", 25 * time.Hour},
		{autumn, at("2026-10-26 00:00"), "2026-10-26 00:00", 2, "2026-10-27 00:00", 24 * time.Hour},
		// A day in UTC terms is not a day of the schedule: 23:30 UTC on
		// the 28th is already the 29th in Berlin.
		{spring, time.Date(2026, 3, 28, 23, 30, 0, 0, time.UTC), "2026-03-29 00:00", 1, "2026-03-30 00:00", 23 * time.Hour},
	} {
		day, n := tc.w.DayOf(tc.at)
		next := tc.w.NextDay(tc.at)
		if got := day.In(berlin).Format("2006-01-02 15:04"); got != tc.day || n != tc.n {
			t.Errorf("%s DayOf(%v) = %s, day %d; want %s, day %d", tc.w.Name, tc.at, got, n, tc.day, tc.n)
		}
		if got := next.In(berlin).Format("2006-01-02 15:04"); got != tc.next {
			t.Errorf("%s NextDay(%v) = %s; want %s", tc.w.Name, tc.at, got, tc.next)
		}
		if got := next.Sub(day); got != tc.dayLong {
			t.Errorf("%s: the day of %v lasts %v; want %v", tc.w.Name, tc.at, got, tc.dayLong)
		}
	}
	for n, want := range map[int]int{-1: 10, 0: 10, 1: 20, 2: 40} {
		if got, on := spring.Cap(n); got != want || !on {
			t.Errorf("Cap(%d) = %d, %v; want %d, true", n, got, on, want)
		}
	}
	if got, on := spring.Cap(3); on || got != 0 {
		t.Errorf("Cap(3) after a 3-day schedule = %d, %v; want over", got, on)
	}
}

func TestWarmupMatches(t *testing.T) {
	c := warmupConfig(t, `
[[warmup]]
name = "new-ip"
senders = ["*@news.acme.example", "promo@globex.example"]
start = "2026-11-01"
schedule = [100]
[[warmup]]
name = "acme"
scope = "acme"
start = "2026-11-01"
schedule = [100]
`)
	if len(c.Warmups) != 2 {
		t.Fatal(c.Warmups)
	}
	for _, tc := range []struct{ scope, sender, want string }{
		{"acme", "a@news.acme.example", "new-ip"},
		{"globex", "Promo@Globex.example", "new-ip"},
		{"globex", "other@globex.example", ""},
		{"acme", "other@acme.example", "acme"},
		{"", "x@elsewhere.example", ""},
	} {
		got := ""
		if w := c.WarmupFor(tc.scope, tc.sender); w != nil {
			got = w.Name
		}
		if got != tc.want {
			t.Errorf("WarmupFor(%q, %q) = %q; want %q", tc.scope, tc.sender, got, tc.want)
		}
	}
}

func TestWarmupErrors(t *testing.T) {
	_, err := Parse([]byte(`state_dir = "/srv/senderkit"
[[scope]]
name = "acme"
[[warmup]]
name = "a b"
scope = "nobody"
start = "23.11.2026"
schedule = [0]
time_zone = "Mars/Olympus"
[[warmup]]
name = "empty"
start = "2026-11-23"
`), "w.toml")
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{
		`w.toml:5: warmup[0].name: "a b"`,
		`warmup[0].scope: "nobody" is not a configured scope`,
		`warmup[0].start: "23.11.2026": want YYYY-MM-DD`,
		`warmup[0].schedule[0]: 0: a day's cap must be at least 1`,
		`warmup[0].time_zone: "Mars/Olympus"`,
		`warmup[1]: needs scope, senders or both`,
		`warmup[1].schedule: must list at least one day's cap`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
}

// A scope's [scope.vetting] table overrides only the keys it writes.
func TestScopeVettingInherits(t *testing.T) {
	c, err := Parse([]byte(`state_dir = "/srv/senderkit"
[vetting]
min_sent = 50
hard_bounce_percent = 3
[[scope]]
name = "strict"
  [scope.vetting]
  complaint_percent = 0.1
  min_sent = 0
[[scope]]
name = "plain"
`), "v.toml")
	if err != nil {
		t.Fatal(err)
	}
	strict, plain := c.Scope("strict").Vetting, c.Scope("plain").Vetting
	if strict.ComplaintPercent != 0.1 || strict.MinSent != 0 || strict.HardBouncePercent != 3 || strict.Window.D() != 24*time.Hour {
		t.Errorf("strict: %+v", strict)
	}
	if plain.ComplaintPercent != 0.3 || plain.MinSent != 50 || plain.HardBouncePercent != 3 {
		t.Errorf("plain: %+v", plain)
	}
	_, err = Parse([]byte(`state_dir = "/srv/senderkit"
[vetting]
interval = "0s"
[[scope]]
name = "x"
  [scope.vetting]
  complaint_percent = 101
  window = "10s"
`), "bad.toml")
	for _, want := range []string{"vetting.interval: 0s is outside 100ms to 24h", "scope[0].vetting.complaint_percent: 101 is outside 0 to 100",
		"scope[0].vetting.window: 10s is outside 1m to 90d"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
}
