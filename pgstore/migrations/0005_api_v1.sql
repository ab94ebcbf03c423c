-- Host API v1 (notifications.StoreV1): per-method preferences, template methods and soft
-- deletion, cancellation, the attempt history and archived inbox items. Every change here
-- is catalog-only (nullable columns or constant defaults, a NOT VALID check) or creates a
-- new table, so the transaction holds its locks for milliseconds; the indexes are built
-- concurrently by 0006_api_v1_indexes.sql.

-- Templates list their methods (Template.Methods, ExcludeMethods) and are soft-deleted.
ALTER TABLE templates ADD COLUMN methods text[] NOT NULL DEFAULT '{}';
ALTER TABLE templates ADD COLUMN exclude_methods text[] NOT NULL DEFAULT '{}';
ALTER TABLE templates ADD COLUMN deleted_at timestamptz;
UPDATE templates SET methods = ARRAY[method] WHERE method <> '';

-- A preference for one method overrides the all-methods row in preferences, which keeps
-- its key (and so its meaning for replicas of the previous version).
CREATE TABLE method_preferences (
    user_id     uuid NOT NULL,
    template_id uuid NOT NULL REFERENCES templates (id) ON DELETE CASCADE,
    method      text NOT NULL CHECK (method <> ''),
    disabled    boolean NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, template_id, method)
);

-- canceled is a terminal status. cancel_reason is set on a leased message whose
-- cancellation was requested (an operator, a deleted template): it ends canceled when its
-- result arrives, unless that is a success or a permanent failure, or when its lease
-- expires. The widened check is validated in 0006, without blocking writes.
ALTER TABLE messages ADD COLUMN cancel_reason text;
ALTER TABLE messages DROP CONSTRAINT messages_status_check;
ALTER TABLE messages ADD CONSTRAINT messages_status_check CHECK (status IN
    ('pending', 'leased', 'sent', 'temporary_failure', 'permanent_failure', 'inhibited', 'canceled')) NOT VALID;

-- The attempt history: one row per lease, finished by its result (or by the next lease when
-- the lease expired). The newest 50 per message are kept; rows go with their message.
CREATE TABLE attempts (
    message_id  uuid NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    id          bigint GENERATED ALWAYS AS IDENTITY,
    number      integer NOT NULL,
    notifier_id uuid NOT NULL,
    leased_at   timestamptz NOT NULL,
    finished_at timestamptz,
    outcome     text NOT NULL,
    reason      text NOT NULL DEFAULT '',
    duration_ns bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (message_id, id)
);

-- Archived inbox items leave the default listing and the unread count.
ALTER TABLE inbox ADD COLUMN archived_at timestamptz;

-- The open attempt of each leased message (a result write finishes it): only in-flight
-- attempts are in it, so finishing one is an index probe whatever the table's size.
CREATE INDEX attempts_open ON attempts (message_id) WHERE finished_at IS NULL;
