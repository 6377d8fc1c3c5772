-- Agent HA fencing (ADR 0031): the newest leader term an agent's HA group announced in its hello. A
-- connection from an older term is refused, and one whose term was overtaken is dropped.
ALTER TABLE agents ADD COLUMN ha_epoch INTEGER NOT NULL DEFAULT 0;
