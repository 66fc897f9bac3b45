# shellcheck shell=bash
# Compare: this run's pre and post inventories of this instance -> s3://Bucket/OutputPrefix<id>.csv,
# one row per post row whose (name, version) was not in pre; previous_version lists the pre
# versions of that name that are gone ('' for a new package).
pp_params_from_env
PRE_PREFIX="${SSM_PrePrefix:-}"
POST_PREFIX="${SSM_PostPrefix:-}"
OUTPUT_PREFIX="${SSM_OutputPrefix:-}"
pp_begin
pp_check_prefix PrePrefix "$PRE_PREFIX" || { PP_DETAIL="bad PrePrefix"; exit 1; }
pp_check_prefix PostPrefix "$POST_PREFIX" || { PP_DETAIL="bad PostPrefix"; exit 1; }
pp_check_prefix OutputPrefix "$OUTPUT_PREFIX" || { PP_DETAIL="bad OutputPrefix"; exit 1; }

pre="$PP_WORK/pre.csv"
post="$PP_WORK/post.csv"
out="$PP_WORK/compare.csv"
pp_s3_get "${PRE_PREFIX}${INSTANCE_ID}.csv" "$pre" || { PP_DETAIL="no pre inventory for $INSTANCE_ID"; exit 1; }
pp_s3_get "${POST_PREFIX}${INSTANCE_ID}.csv" "$post" || { PP_DETAIL="no post inventory for $INSTANCE_ID"; exit 1; }
compared_at="$(pp_now)"

# python3's csv module reads any CSV; without python3, an awk reader handles the format the
# inventory writes (every field quoted, quotes doubled, no line breaks inside a field).
compare_python() {
  python3 - "$pre" "$post" "$compared_at" <<'PY'
import csv, sys
pre_path, post_path, compared_at = sys.argv[1:4]
with open(pre_path, newline='') as f:
    pre = list(csv.DictReader(f))
with open(post_path, newline='') as f:
    post = list(csv.DictReader(f))
pre_versions = {}
for row in pre:
    pre_versions.setdefault(row['name'], []).append(row['version'])
post_pairs = {(row['name'], row['version']) for row in post}
out = csv.writer(sys.stdout, quoting=csv.QUOTE_ALL, lineterminator='\n')
sys.stdout.write('instance_id,owner,domain,application,name,version,previous_version,installed_on,compared_at\n')
for row in post:
    if row['version'] in pre_versions.get(row['name'], []):
        continue
    gone = [v for v in pre_versions.get(row['name'], []) if (row['name'], v) not in post_pairs]
    out.writerow([row['instance_id'], row['owner'], row['domain'], row['application'], row['name'],
                  row['version'], ';'.join(gone), row['installed_on'], compared_at])
PY
}

compare_awk() {
  awk -v compared_at="$compared_at" '
    function parse(line, f,    n, i, c, v, q) {
      n = 0; v = ""; q = 0
      for (i = 1; i <= length(line); i++) {
        c = substr(line, i, 1)
        if (q) {
          if (c == "\"") {
            if (substr(line, i + 1, 1) == "\"") { v = v "\""; i++ } else { q = 0 }
          } else { v = v c }
        } else if (c == "\"") { q = 1 }
        else if (c == ",") { f[++n] = v; v = "" }
        else if (c != "\r") { v = v c }
      }
      f[++n] = v
      return n
    }
    function quote(s) { gsub(/"/, "\"\"", s); return "\"" s "\"" }
    FNR == 1 { next }
    FILENAME == ARGV[1] {
      parse($0, f)
      have[f[5] SUBSEP f[6]] = 1
      names[f[5]] = (f[5] in names) ? names[f[5]] SUBSEP f[6] : f[6]
      next
    }
    { parse($0, f); postpair[f[5] SUBSEP f[6]] = 1; rows[++nrows] = $0 }
    END {
      print "instance_id,owner,domain,application,name,version,previous_version,installed_on,compared_at"
      for (r = 1; r <= nrows; r++) {
        parse(rows[r], f)
        if ((f[5] SUBSEP f[6]) in have) continue
        gone = ""
        if (f[5] in names) {
          k = split(names[f[5]], versions, SUBSEP)
          for (j = 1; j <= k; j++) {
            if (!((f[5] SUBSEP versions[j]) in postpair)) gone = (gone == "") ? versions[j] : gone ";" versions[j]
          }
        }
        print quote(f[1]) "," quote(f[2]) "," quote(f[3]) "," quote(f[4]) "," quote(f[5]) "," quote(f[6]) "," quote(gone) "," quote(f[7]) "," quote(compared_at)
      }
    }' "$pre" "$post"
}

if command -v python3 >/dev/null 2>&1; then
  compare_python >"$out"
  engine="python3"
else
  compare_awk >"$out"
  engine="awk"
fi
changes=$(($(wc -l <"$out") - 1))
pp_s3_put "$out" "${OUTPUT_PREFIX}${INSTANCE_ID}.csv"
PP_DETAIL="$changes new or changed packages ($engine)"
