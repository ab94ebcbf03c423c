-- Enqueues stop locking their template row. The foreign key from messages to templates
-- made every inserted message run a check that takes a KEY SHARE lock on its template's
-- row; concurrent enqueues of one template (every signup's welcome message) then share
-- that row through multixacts, and a batch of 1,000 ran 1,000 such checks. The library
-- never deletes a template row (DeleteTemplate only marks it deleted), and every enqueue
-- already reads the template it names and refuses an unknown or deleted one, so the key
-- guarded nothing the statements do not. A template row deleted by hand no longer takes
-- its messages with it: its unfinished messages end canceled ("template deleted") when a
-- notifier would lease them, and finished ones are purged as usual.
ALTER TABLE messages DROP CONSTRAINT IF EXISTS messages_template_id_fkey;
