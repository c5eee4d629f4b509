package sqlitestore

// migrations[i] brings the schema from version i to i+1. The version is
// kept in PRAGMA user_version. Append, never edit: a database in the field
// has already run the old entries.
var migrations = []string{
	// 1: names, sends, events, suppressions.
	`
CREATE TABLE names (
	id   INTEGER PRIMARY KEY,
	kind INTEGER NOT NULL,          -- 1 scope, 2 stream
	name TEXT NOT NULL,
	UNIQUE (kind, name)
);
-- The scope of entries that apply to every scope exists from the start,
-- so a lookup never has to ask for it again.
INSERT INTO names (kind, name) VALUES (1, '*');

-- One row per delivered copy; id is the token's random send id.
CREATE TABLE sends (
	id        INTEGER PRIMARY KEY,
	scope_id  INTEGER NOT NULL REFERENCES names(id),
	stream_id INTEGER NOT NULL REFERENCES names(id),
	recipient TEXT NOT NULL,
	queue_id  TEXT NOT NULL DEFAULT '',
	at        INTEGER NOT NULL      -- unix seconds
);
CREATE INDEX sends_queue_id ON sends (queue_id) WHERE queue_id != '';
CREATE INDEX sends_recipient ON sends (scope_id, recipient, at);

-- History: never updated, never deleted.
CREATE TABLE events (
	id            INTEGER PRIMARY KEY AUTOINCREMENT,
	at            INTEGER NOT NULL,
	type          TEXT NOT NULL,
	scope_id      INTEGER REFERENCES names(id),
	stream_id     INTEGER REFERENCES names(id),
	address       TEXT NOT NULL DEFAULT '',
	send_id       INTEGER,          -- no foreign key: sends may be purged, history stays
	reason        TEXT NOT NULL DEFAULT '',
	hard          INTEGER NOT NULL DEFAULT 0,
	status        TEXT NOT NULL DEFAULT '',
	reply_code    TEXT NOT NULL DEFAULT '',
	diagnostic    TEXT NOT NULL DEFAULT '',
	feedback_type TEXT NOT NULL DEFAULT '',
	reporting_mta TEXT NOT NULL DEFAULT '',
	source        TEXT NOT NULL DEFAULT '',
	key           TEXT UNIQUE       -- idempotency key, NULL for none
);
CREATE INDEX events_address ON events (address);
CREATE INDEX events_send_id ON events (send_id) WHERE send_id IS NOT NULL;
CREATE INDEX events_at ON events (at);

-- The suppression list. stream_id 0 means every stream of the scope.
CREATE TABLE suppressions (
	scope_id  INTEGER NOT NULL REFERENCES names(id),
	address   TEXT NOT NULL,
	stream_id INTEGER NOT NULL,
	reason    TEXT NOT NULL,
	created   INTEGER NOT NULL,
	expires   INTEGER,              -- NULL: never
	times     INTEGER NOT NULL DEFAULT 1,
	event_id  INTEGER NOT NULL REFERENCES events(id),
	PRIMARY KEY (scope_id, address, stream_id)
) WITHOUT ROWID;
CREATE INDEX suppressions_created ON suppressions (created);
`,
	// 2: soft-bounce streaks: the sends that bounced softly since the
	// recipient's last delivery.
	`
CREATE TABLE bounce_streaks (
	scope_id INTEGER NOT NULL REFERENCES names(id),
	address  TEXT NOT NULL,
	send_id  INTEGER NOT NULL,
	at       INTEGER NOT NULL,      -- first soft bounce of this send
	PRIMARY KEY (scope_id, address, send_id)
) WITHOUT ROWID;
`,
	// 3: the policy server's throttle state per destination (what
	// "senderkit report throttle" shows), and an index that lets it read
	// the suppressions listed since the last event it saw.
	`
CREATE TABLE throttles (
	destination TEXT NOT NULL,      -- a destination group, "google.com"
	scope       TEXT NOT NULL,      -- '' for the whole destination, else a suspended scope
	state       TEXT NOT NULL,      -- "throttled" or "suspended"
	rate        REAL NOT NULL,      -- messages a minute accepted (throttled)
	since       INTEGER NOT NULL,   -- unix seconds
	until       INTEGER NOT NULL,   -- suspended until; 0 for none
	tempfails   INTEGER NOT NULL,   -- in the window
	successes   INTEGER NOT NULL,   -- in the window
	reason      TEXT NOT NULL,      -- "rate-limited", "tempfail", "blocklisted"
	reply       TEXT NOT NULL,      -- the remote's reply that caused it
	updated     INTEGER NOT NULL,
	PRIMARY KEY (destination, scope)
) WITHOUT ROWID;
CREATE INDEX suppressions_event ON suppressions (event_id);
`,
	// 4: the submission each copy came from, so that the milter finds
	// the copies a retried submission already queued.
	`
ALTER TABLE sends ADD COLUMN message_key TEXT NOT NULL DEFAULT '';
CREATE INDEX sends_message_key ON sends (message_key, recipient, at) WHERE message_key != '';
`,
	// 5: the relay that wrote each send, event and throttle state (a
	// fleet shares a PostgreSQL store; a store copied there from SQLite
	// keeps saying which host wrote what). Throttle state is per relay.
	`
ALTER TABLE sends ADD COLUMN relay TEXT NOT NULL DEFAULT '';
ALTER TABLE events ADD COLUMN relay TEXT NOT NULL DEFAULT '';
CREATE TABLE throttles_by_relay (
	relay       TEXT NOT NULL,
	destination TEXT NOT NULL,
	scope       TEXT NOT NULL,
	state       TEXT NOT NULL,
	rate        REAL NOT NULL,
	since       INTEGER NOT NULL,
	until       INTEGER NOT NULL,
	tempfails   INTEGER NOT NULL,
	successes   INTEGER NOT NULL,
	reason      TEXT NOT NULL,
	reply       TEXT NOT NULL,
	updated     INTEGER NOT NULL,
	PRIMARY KEY (relay, destination, scope)
) WITHOUT ROWID;
INSERT INTO throttles_by_relay SELECT '', destination, scope, state, rate, since, until, tempfails, successes, reason, reply, updated FROM throttles;
DROP TABLE throttles;
ALTER TABLE throttles_by_relay RENAME TO throttles;
`,
	// 6: the scopes on hold (Record with PauseScope and ResumeScope),
	// and each relay's count of a warm-up's traffic per destination and
	// day of its schedule.
	`
CREATE TABLE pauses (
	scope_id INTEGER PRIMARY KEY REFERENCES names(id),
	event_id INTEGER NOT NULL REFERENCES events(id) -- the Paused event that began it
);
CREATE TABLE warmup_days (
	warmup      TEXT NOT NULL,      -- the warm-up's name in the configuration
	destination TEXT NOT NULL,      -- a destination group, "google.com"
	day         INTEGER NOT NULL,   -- unix seconds of 00:00 in the warm-up's time zone
	relay       TEXT NOT NULL,
	sent        INTEGER NOT NULL,
	held        INTEGER NOT NULL,   -- 1: the destination deferred or refused that day
	PRIMARY KEY (warmup, destination, day, relay)
) WITHOUT ROWID;
`,
	// 7: sends by time, for the health windows and reports (a 1-hour
	// window read the whole table without it), and the scopes' resumes,
	// which the health check reads every minute: an index of that one
	// rare type only (the writes of every other event do not pay for
	// it), in the order Events lists them.
	`
CREATE INDEX sends_at ON sends (at);
CREATE INDEX events_resumes ON events (id) WHERE type = 'scope-resumed';
`,
	// 8: a delivery ends a soft-bounce streak by marking its sends with
	// the delivered send (reset_by), not by deleting them: when that
	// send bounces later after all (the remote accepted it, then
	// returned it), the streak it ended is whole again.
	`
ALTER TABLE bounce_streaks ADD COLUMN reset_by INTEGER; -- NULL: in the streak
`,
}
