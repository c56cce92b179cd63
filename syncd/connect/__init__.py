"""Connect client: `rql` builds queries, `client.ConnectClient` sends them (auth, retries,
`Content-Range` paging), `errors` says what a failure means (retriable, fatal, one record)."""
