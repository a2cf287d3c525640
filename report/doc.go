package report

import (
	"encoding/base64"
	"fmt"
	"html"
	"strings"
)

// A document is a list of blocks rendered both as Markdown and as self-contained HTML. Inline
// text may hold `code spans`; nothing else is markup.
type document struct {
	blocks []any
}

type heading struct {
	level int
	text  string
}

type para struct{ text string }

type table struct {
	head []string
	rows [][]string
	// right marks numeric columns (right-aligned).
	right []bool
}

type image struct {
	file, alt string
	data      []byte
}

type codeBlock struct{ text string }

type bullets struct{ items []string }

func (d *document) h(level int, format string, args ...any) {
	d.blocks = append(d.blocks, heading{level, fmt.Sprintf(format, args...)})
}

func (d *document) p(format string, args ...any) {
	d.blocks = append(d.blocks, para{fmt.Sprintf(format, args...)})
}

func (d *document) add(b any) { d.blocks = append(d.blocks, b) }

// markdown renders d as GitHub-flavoured Markdown; images refer to their files.
func (d *document) markdown() string {
	var b strings.Builder
	for i, bl := range d.blocks {
		if i > 0 {
			b.WriteString("\n")
		}
		switch x := bl.(type) {
		case heading:
			fmt.Fprintf(&b, "%s %s\n", strings.Repeat("#", x.level), mdInline(x.text))
		case para:
			fmt.Fprintf(&b, "%s\n", mdInline(x.text))
		case bullets:
			for _, it := range x.items {
				fmt.Fprintf(&b, "- %s\n", mdInline(it))
			}
		case codeBlock:
			fence := "```"
			for strings.Contains(x.text, fence) {
				fence += "`"
			}
			fmt.Fprintf(&b, "%s\n%s\n%s\n", fence, strings.TrimRight(x.text, "\n"), fence)
		case image:
			fmt.Fprintf(&b, "![%s](%s)\n", mdCell(x.alt), x.file)
		case table:
			row := func(cells []string) {
				b.WriteString("|")
				for _, c := range cells {
					fmt.Fprintf(&b, " %s |", mdCell(c))
				}
				b.WriteString("\n")
			}
			row(x.head)
			b.WriteString("|")
			for i := range x.head {
				if i < len(x.right) && x.right[i] {
					b.WriteString("---:|")
				} else {
					b.WriteString("---|")
				}
			}
			b.WriteString("\n")
			for _, r := range x.rows {
				row(r)
			}
		}
	}
	return b.String()
}

// mdInline keeps text as it is, but turns line breaks into spaces and escapes characters
// Markdown would read as emphasis or HTML outside code spans.
func mdInline(s string) string {
	s = strings.ReplaceAll(s, "\n", " ")
	var b strings.Builder
	for i, part := range strings.Split(s, "`") {
		if i > 0 {
			b.WriteString("`")
		}
		if i%2 == 1 {
			b.WriteString(part)
			continue
		}
		r := strings.NewReplacer("*", `\*`, "_", `\_`, "<", "&lt;", ">", "&gt;", "[", `\[`, "]", `\]`)
		b.WriteString(r.Replace(part))
	}
	return b.String()
}

// mdCell is mdInline for a table cell (pipes escaped).
func mdCell(s string) string {
	return strings.ReplaceAll(mdInline(s), "|", `\|`)
}

// htmlInline escapes s and turns `code spans` into <code> elements.
func htmlInline(s string) string {
	var b strings.Builder
	parts := strings.Split(s, "`")
	for i, part := range parts {
		if i%2 == 1 && i < len(parts)-1 {
			b.WriteString("<code>" + html.EscapeString(part) + "</code>")
			continue
		}
		if i%2 == 1 {
			b.WriteString("`")
		}
		b.WriteString(html.EscapeString(part))
	}
	return b.String()
}

const htmlStyle = `body{font-family:-apple-system,"Segoe UI",Helvetica,Arial,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;color:#222;line-height:1.45}
h1,h2,h3{line-height:1.2}h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:1.8em}
table{border-collapse:collapse;margin:.8em 0;font-size:.92em}th,td{border:1px solid #ccc;padding:.25em .6em;vertical-align:top}
th{background:#f3f3f3}td.r{text-align:right;font-variant-numeric:tabular-nums}
code{background:#f4f4f4;padding:0 .25em;border-radius:3px;font-size:.92em}
pre{background:#f4f4f4;padding:.7em;overflow-x:auto;white-space:pre-wrap;word-break:break-all}
img{max-width:100%;height:auto;display:block;margin:.8em 0;border:1px solid #eee}`

// html renders d as one self-contained HTML page; images are embedded as data: URIs.
func (d *document) html(title string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n%s\n<title>%s</title>\n<style>\n%s\n</style>\n</head>\n<body>\n",
		htmlMarker, html.EscapeString(title), htmlStyle)
	for _, bl := range d.blocks {
		switch x := bl.(type) {
		case heading:
			fmt.Fprintf(&b, "<h%d>%s</h%d>\n", x.level, htmlInline(x.text), x.level)
		case para:
			fmt.Fprintf(&b, "<p>%s</p>\n", htmlInline(x.text))
		case bullets:
			b.WriteString("<ul>\n")
			for _, it := range x.items {
				fmt.Fprintf(&b, "<li>%s</li>\n", htmlInline(it))
			}
			b.WriteString("</ul>\n")
		case codeBlock:
			fmt.Fprintf(&b, "<pre><code>%s</code></pre>\n", html.EscapeString(strings.TrimRight(x.text, "\n")))
		case image:
			fmt.Fprintf(&b, "<img alt=\"%s\" title=\"%s\" src=\"data:image/png;base64,%s\">\n",
				html.EscapeString(x.alt), html.EscapeString(x.file), base64.StdEncoding.EncodeToString(x.data))
		case table:
			b.WriteString("<table>\n<thead><tr>")
			for _, h := range x.head {
				fmt.Fprintf(&b, "<th>%s</th>", htmlInline(h))
			}
			b.WriteString("</tr></thead>\n<tbody>\n")
			for _, r := range x.rows {
				b.WriteString("<tr>")
				for i, c := range r {
					if i < len(x.right) && x.right[i] {
						fmt.Fprintf(&b, "<td class=\"r\">%s</td>", htmlInline(c))
					} else {
						fmt.Fprintf(&b, "<td>%s</td>", htmlInline(c))
					}
				}
				b.WriteString("</tr>\n")
			}
			b.WriteString("</tbody>\n</table>\n")
		}
	}
	b.WriteString("</body>\n</html>\n")
	return b.String()
}
