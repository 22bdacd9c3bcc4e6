-- Runs across peers. On a run of a peer's system (storage@a), peer is the
-- peer that runs it, peer_run its id there once the peer says, and
-- hosts_ok and hosts_failed how many of the peer's hosts succeeded and did
-- not, as the peer told. On a run a peer asked for here, peer is the peer
-- that asked and peer_run the run's id on it, to answer with.
ALTER TABLE runs ADD COLUMN peer TEXT NOT NULL DEFAULT '';
ALTER TABLE runs ADD COLUMN peer_run TEXT NOT NULL DEFAULT '';
ALTER TABLE runs ADD COLUMN hosts_ok INTEGER NOT NULL DEFAULT 0;
ALTER TABLE runs ADD COLUMN hosts_failed INTEGER NOT NULL DEFAULT 0;
