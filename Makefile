# notifications — run `make` for the list of targets.
.DEFAULT_GOAL := help
GO ?= go
STATICCHECK ?= honnef.co/go/tools/cmd/staticcheck@v0.8.2
PKGS := ./...

.PHONY: help test test-short lint check-size demo golden bench bench-quick bench-go fuzz soak

help: ## List the targets.
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

# pgx exec modes besides the default (cache_statement) that the pgstore tests run in too.
EXEC_MODES := cache_describe describe_exec exec simple_protocol

test: ## Run every test with -race against a throw-away PostgreSQL and PgBouncer, then the pgstore tests in every other pgx exec mode.
	./scripts/ensure-chromium.sh
	./scripts/with-postgres.sh sh -c '$(GO) test -race -count=1 $(PKGS) && \
		for m in $(EXEC_MODES); do echo "== pgstore in pgx exec mode $$m (long tests: default mode only)"; \
		NOTIFICATIONS_TEST_EXEC_MODE=$$m $(GO) test -race -count=1 ./pgstore/ || exit 1; done'

test-short: ## Run the tests that need no database.
	$(GO) test -race -count=1 -short $(PKGS)

lint: check-size ## gofmt, go vet, staticcheck, and no tracked file over 1 MB.
	@out=$$(gofmt -l . ); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)
	$(GO) run $(STATICCHECK) $(PKGS)
	cd bench && $(GO) vet ./... && $(GO) run $(STATICCHECK) ./...

check-size: ## Fail on any tracked file over 1 MB (build outputs and binaries do not belong in git).
	@set -e; list=$$(mktemp); trap 'rm -f "$$list"' EXIT; \
	git ls-files -z > "$$list" || { echo "check-size: git ls-files failed"; exit 1; }; \
	big=$$(xargs -0 -r stat -c '%s %n' < "$$list" | awk '$$1 > 1048576 {print $$2}'); \
	if [ -n "$$big" ]; then echo "tracked files over 1 MB (build outputs do not belong in git):"; echo "$$big"; exit 1; fi

demo: ## The main job on the embedded in-memory store: email, webhook and inbox deliveries (DATABASE_URL=... for pgstore).
	$(GO) run ./cmd/demo

golden: ## Regenerate the golden files (dispatch/testdata/golden: rendered emails and webhook bodies); review the diff.
	$(GO) test -count=1 -run '^TestGolden$$' ./dispatch/ -update
	git status --short -- dispatch/testdata/golden

bench: ## Side by side with River v0.51 and a raw pgx loop on a throw-away PostgreSQL, durable then fast settings, 3 rounds; see BENCHMARKS.md.
	NOTIFICATIONS_PG_DURABLE=1 ./scripts/with-postgres.sh sh -c 'cd bench && $(GO) run . -rounds 3'

bench-quick: ## A small version of bench (one round, 20,000 messages, durable then fast settings): a few minutes.
	NOTIFICATIONS_PG_DURABLE=1 ./scripts/with-postgres.sh sh -c 'cd bench && $(GO) run . -quick'

bench-go: ## The Go benchmarks of the library itself (memstore and pgstore drain, enqueue).
	./scripts/with-postgres.sh $(GO) test -run '^$$' -bench . -benchtime 100000x -count 3 . ./pgstore/

FUZZTIME ?= 60s
FUZZ_TARGETS := .:FuzzRenderTitleBody .:FuzzDecodePayload .:FuzzDecodePayloadFast .:FuzzRenderPlan .:FuzzRenderActionURL ./internal/markdown:FuzzMarkdown \
	./internal/email:FuzzEncodeHeaderText ./internal/email:FuzzFormatAddress ./dispatch:FuzzVerifyWebhook

fuzz: ## Run every fuzz target for FUZZTIME (default 60s) each; seeds live in testdata/fuzz.
	@set -e; for t in $(FUZZ_TARGETS); do pkg=$${t%%:*}; name=$${t##*:}; \
		echo "== $$name ($$pkg, $(FUZZTIME))"; \
		$(GO) test -run '^$$' -fuzz "^$$name$$" -fuzztime $(FUZZTIME) $$pkg; done

SOAK_MESSAGES ?= 200000

soak: ## The chaos test with SOAK_MESSAGES (default 200,000) messages, under -race.
	NOTIFICATIONS_SOAK_MESSAGES=$(SOAK_MESSAGES) ./scripts/with-postgres.sh $(GO) test -race -count=1 -timeout 60m -run '^TestChaos$$' -v ./pgstore/
