-- The inbox keeps the Markdown form of the title beside the plain one. A constant default
-- makes this a catalog-only change: no table rewrite.
ALTER TABLE inbox ADD COLUMN title_markdown text NOT NULL DEFAULT '';
