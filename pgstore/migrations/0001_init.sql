-- notifications schema, version 1. Runs with search_path set to the target schema.

CREATE TABLE templates (
    id                 uuid PRIMARY KEY,
    name               text NOT NULL UNIQUE,
    grp                text NOT NULL DEFAULT '',
    kind               text NOT NULL DEFAULT '',
    title_template     text NOT NULL,
    body_template      text NOT NULL,
    actions            jsonb NOT NULL DEFAULT '[]',
    method             text NOT NULL DEFAULT '',
    enabled_by_default boolean NOT NULL DEFAULT true,
    updated_at         timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE preferences (
    user_id     uuid NOT NULL,
    template_id uuid NOT NULL REFERENCES templates (id) ON DELETE CASCADE,
    disabled    boolean NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, template_id)
);

CREATE TABLE messages (
    seq              bigint GENERATED ALWAYS AS IDENTITY,
    id               uuid PRIMARY KEY,
    template_id      uuid NOT NULL REFERENCES templates (id) ON DELETE CASCADE,
    user_id          uuid NOT NULL,
    method           text NOT NULL CHECK (method <> ''),
    status           text NOT NULL DEFAULT 'pending' CHECK (status IN
                         ('pending', 'leased', 'sent', 'temporary_failure', 'permanent_failure', 'inhibited')),
    status_reason    text NOT NULL DEFAULT '',
    attempt_count    integer NOT NULL DEFAULT 0,
    payload          json NOT NULL,
    targets          uuid[] NOT NULL DEFAULT '{}',
    created_by       text NOT NULL DEFAULT '',
    dedupe_key       text UNIQUE,
    created_at       timestamptz NOT NULL,
    updated_at       timestamptz NOT NULL,
    leased_by        uuid,
    leased_until     timestamptz,
    next_retry_after timestamptz,
    sent_at          timestamptz
);

-- The lease scan: unfinished messages in enqueue order. Finished rows leave the index, so
-- it stays as small as the backlog.
CREATE INDEX messages_unfinished ON messages (seq)
    WHERE status IN ('pending', 'leased', 'temporary_failure');

-- The purge: finished messages by age.
CREATE INDEX messages_finished ON messages (updated_at)
    WHERE status IN ('sent', 'permanent_failure', 'inhibited');

-- Admin listings by user.
CREATE INDEX messages_user ON messages (user_id, seq);

CREATE TABLE settings (
    id     integer PRIMARY KEY CHECK (id = 1),
    paused boolean NOT NULL DEFAULT false
);
INSERT INTO settings (id, paused) VALUES (1, false);

CREATE TABLE inbox (
    id          uuid PRIMARY KEY,
    seq         bigint GENERATED ALWAYS AS IDENTITY,
    user_id     uuid NOT NULL,
    template_id uuid NOT NULL,
    title       text NOT NULL,
    content     text NOT NULL,
    actions     jsonb NOT NULL DEFAULT '[]',
    targets     uuid[] NOT NULL DEFAULT '{}',
    created_at  timestamptz NOT NULL,
    read_at     timestamptz
);
CREATE INDEX inbox_user ON inbox (user_id, seq DESC);
CREATE INDEX inbox_user_unread ON inbox (user_id) WHERE read_at IS NULL;
