"""The dashboard: server-rendered pages (Jinja2) for people, progressively enhanced with htmx and
its SSE extension (live fragments rendered from read-model changes) and Chart.js. Everything it
needs is in this package (vendored, pinned JS with licences): no CDN, no Node, no extra process."""
