// A program outside the repository that calls singleflightd through the
// installed client library (built and run by tests/clients/install_test.sh).
//
// Usage: consumer HOST:PORT
// Prints: value=consumer shared=false health=SERVING flight_key=HEX
#include <singleflight/client/client.h>
#include <singleflight/client/flight_key.h>

#include <iostream>
#include <memory>

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: consumer HOST:PORT\n";
    return 2;
  }
  singleflight::ClientOptions options;
  options.timeout = absl::Seconds(10);
  std::unique_ptr<singleflight::Client> client =
      singleflight::Client::Connect(argv[1], options);

  absl::StatusOr<singleflight::DoResult> result = client->Do("consumer");
  if (!result.ok()) {
    std::cerr << "Do: " << result.status() << "\n";
    return 1;
  }
  auto health = client->Health();
  if (!health.ok()) {
    std::cerr << "Health: " << health.status() << "\n";
    return 1;
  }
  std::cout << "value=" << result->value
            << " shared=" << (result->shared ? "true" : "false") << " health="
            << grpc::health::v1::HealthCheckResponse::ServingStatus_Name(
                   *health)
            << " flight_key=" << singleflight::FlightKey("", "consumer")
            << "\n";
  return 0;
}
