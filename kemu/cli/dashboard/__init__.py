"""`kemu dashboard`: a read-only web page of a live cluster, kept current over the
apiserver's watch streams (cli.py: the command; server.py: informers, HTTP and
Server-Sent Events; rows.py: what is shown of each object; static/: the page itself,
plain HTML, CSS and JavaScript with no build step and nothing fetched from elsewhere).

The dashboard is a client of the API like kemuctl: it reads with the same server, token
and TLS that kemuctl would use, and writes nothing.
"""
