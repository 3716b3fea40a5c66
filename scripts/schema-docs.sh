#!/usr/bin/env bash
# Writes docs/schema.md from the live database: every table of the public schema with its
# comment, columns (type, nullability, default, comment), indexes, foreign keys, other
# constraints and triggers, in a fixed order so that the file only changes when the schema does.
#
#   scripts/schema-docs.sh            DATABASE_URL from the environment, else from
#                                     .run/${GH_PROFILE:-dev}/stack.env (make run starts it)
#   SCHEMA_DOCS_OUT=path scripts/schema-docs.sh    write somewhere else
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
OUT=${SCHEMA_DOCS_OUT:-$REPO/docs/schema.md}

if [ -z "${DATABASE_URL:-}" ]; then
  env_file="$REPO/.run/${GH_PROFILE:-dev}/stack.env"
  if [ ! -f "$env_file" ]; then
    echo "schema-docs: DATABASE_URL is not set and $env_file does not exist; start the stack (make run) or set DATABASE_URL" >&2
    exit 2
  fi
  set -a; . "$env_file"; set +a
fi
[ -n "${DATABASE_URL:-}" ] || { echo "schema-docs: DATABASE_URL is empty" >&2; exit 2; }

q() { psql -X -q -At -v ON_ERROR_STOP=1 -d "$DATABASE_URL" -c "$1"; }

# Markdown-safe cell: pipes escaped, newlines flattened.
CELL="replace(replace(coalesce(%s, ''), '|', '\\|'), E'\\n', ' ')"
cell() { printf "$CELL" "$1"; }

if ! q "SELECT 1" >/dev/null; then
  echo "schema-docs: cannot query the database (see the psql error above)" >&2
  exit 1
fi

tables=$(q "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') ORDER BY c.relname")
migrations=$(q "SELECT string_agg(format('%s', name), ', ' ORDER BY version) FROM schema_migrations" 2>/dev/null || true)

tmp=$(mktemp "${OUT}.XXXXXX")
trap 'rm -f "$tmp"' EXIT
{
  echo "# Database schema"
  echo
  echo "Generated from the live database by \`make schema-docs\` (scripts/schema-docs.sh); do not edit by hand."
  echo "Migrations live in \`sql/\` (see lib/store/migrate.c for the rules)."
  [ -n "$migrations" ] && { echo; echo "Applied migrations: $migrations."; }
  echo
  echo "## Tables"
  echo
  for t in $tables; do
    desc=$(q "SELECT $(cell "obj_description('public.$t'::regclass, 'pg_class')")")
    echo "- [\`$t\`](#$t)${desc:+: $desc}"
  done
  for t in $tables; do
    echo
    echo "## $t"
    echo
    desc=$(q "SELECT coalesce(obj_description('public.$t'::regclass, 'pg_class'), '')")
    [ -n "$desc" ] && { echo "$desc"; echo; }
    echo "| Column | Type | Null | Default | Comment |"
    echo "|---|---|---|---|---|"
    q "SELECT format('| \`%s\` | %s | %s | %s | %s |', a.attname,
                     $(cell "format_type(a.atttypid, a.atttypmod)"),
                     CASE WHEN a.attnotnull THEN 'not null' ELSE 'null' END,
                     $(cell "pg_get_expr(d.adbin, d.adrelid)"),
                     $(cell "col_description(a.attrelid, a.attnum)"))
       FROM pg_attribute a LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
       WHERE a.attrelid = 'public.$t'::regclass AND a.attnum > 0 AND NOT a.attisdropped
       ORDER BY a.attnum"
    idx=$(q "SELECT format('- \`%s\`: %s', indexname, $(cell "indexdef")) FROM pg_indexes
             WHERE schemaname = 'public' AND tablename = '$t' ORDER BY indexname")
    [ -n "$idx" ] && { echo; echo "Indexes:"; echo; echo "$idx"; }
    fks=$(q "SELECT format('- \`%s\`: %s', conname, $(cell "pg_get_constraintdef(oid)")) FROM pg_constraint
             WHERE conrelid = 'public.$t'::regclass AND contype = 'f' ORDER BY conname")
    [ -n "$fks" ] && { echo; echo "Foreign keys:"; echo; echo "$fks"; }
    cons=$(q "SELECT format('- \`%s\`: %s', conname, $(cell "pg_get_constraintdef(oid)")) FROM pg_constraint
              WHERE conrelid = 'public.$t'::regclass AND contype IN ('c', 'u', 'x') ORDER BY conname")
    [ -n "$cons" ] && { echo; echo "Constraints:"; echo; echo "$cons"; }
    trg=$(q "SELECT format('- \`%s\`: %s', tgname, $(cell "pg_get_triggerdef(oid)")) FROM pg_trigger
             WHERE tgrelid = 'public.$t'::regclass AND NOT tgisinternal ORDER BY tgname")
    [ -n "$trg" ] && { echo; echo "Triggers:"; echo; echo "$trg"; }
  done
  types=$(q "SELECT format('- \`%s\`: %s', t.typname, string_agg(e.enumlabel, ', ' ORDER BY e.enumsortorder))
             FROM pg_type t JOIN pg_enum e ON e.enumtypid = t.oid JOIN pg_namespace n ON n.oid = t.typnamespace
             WHERE n.nspname = 'public' GROUP BY t.typname ORDER BY t.typname")
  [ -n "$types" ] && { echo; echo "## Enum types"; echo; echo "$types"; }
  funcs=$(q "SELECT format('- \`%s(%s)\`: %s', p.proname, pg_get_function_identity_arguments(p.oid),
                           $(cell "obj_description(p.oid, 'pg_proc')"))
             FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
             WHERE n.nspname = 'public' ORDER BY p.proname, 1")
  [ -n "$funcs" ] && { echo; echo "## Functions"; echo; echo "$funcs"; }
} > "$tmp"
mkdir -p "$(dirname "$OUT")"
mv "$tmp" "$OUT"
trap - EXIT
echo "schema-docs: wrote $OUT ($(echo "$tables" | grep -c . ) tables)"
