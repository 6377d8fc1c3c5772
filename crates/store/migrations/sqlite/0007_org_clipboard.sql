-- Whether the org's sessions may use the viewer's clipboard (the UI's frame grants clipboard access).
ALTER TABLE orgs ADD COLUMN allow_clipboard INTEGER NOT NULL DEFAULT 1;
