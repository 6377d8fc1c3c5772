-- Keyed audit links (ADR 0014). The head's seal: where HMAC links start (the events before it keep
-- their SHA-256 links), which key sealed the chain (an HMAC of a constant), and the HMAC of the
-- head itself. All three stay NULL until a control plane seals the chain: at once for an empty
-- chain, by an operator's `streamspace admin audit verify --adopt` for one written before.
ALTER TABLE audit_chain_head ADD COLUMN keyed_from INTEGER;
ALTER TABLE audit_chain_head ADD COLUMN key_check TEXT;
ALTER TABLE audit_chain_head ADD COLUMN mac TEXT;
