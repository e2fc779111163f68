"""Running a repository's tests in the sandbox and reporting them test by test.

`detect` finds how a repository runs its tests, `frameworks` turns that into a command and
parses what the command leaves behind (JUnit XML, `go test -json`, cargo's text), `affected`
picks the tests a change can reach, `runner` runs one selection in a sandbox workspace, and
`baseline` compares a run with the same selection on the base commit.
"""
