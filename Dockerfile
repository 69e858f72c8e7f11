# berth reference service. Upstream images by default; override with
#   docker build --build-arg GO_IMAGE=… --build-arg RUNTIME_IMAGE=… .
ARG GO_IMAGE=golang:1.26-bookworm
ARG RUNTIME_IMAGE=gcr.io/distroless/static-debian12:nonroot

FROM ${GO_IMAGE} AS build
WORKDIR /src
# Modules first, as their own layer: source edits do not re-download them.
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
ARG VERSION=dev
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/server ./cmd/server \
    && mkdir /out/data

FROM ${RUNTIME_IMAGE}
# From /, whatever the runtime image's own (distroless :nonroot's is
# /home/nonroot), so the default BERTH_DATA_DIR (data) is /data below.
WORKDIR /
COPY --from=build /out/server /server
# The default BERTH_DATA_DIR (data, from /) for SQLite, writable by the
# user below, so the image runs without a volume; the chart mounts one here.
COPY --from=build --chown=65532:65532 /out/data /data
USER 65532:65532
EXPOSE 8080 9090
ENTRYPOINT ["/server"]
