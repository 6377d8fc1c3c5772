-- Whether the org's sessions may use the viewer's clipboard (the UI's frame grants clipboard access).
ALTER TABLE orgs ADD COLUMN allow_clipboard boolean NOT NULL DEFAULT true;
