// LoopHeartbeat on a real libuv loop: it beats while the loop turns, and its silence grows when
// the loop does not.

#include "proxy/admin/liveness.h"

#include <doctest/doctest.h>

#include <thread>

namespace certrelay::admin {

TEST_CASE("liveness: the heartbeat beats while the loop turns, and never keeps it alive") {
  uv_loop_t loop;
  REQUIRE(uv_loop_init(&loop) == 0);
  LoopHeartbeat heartbeat(std::chrono::milliseconds(10));
  REQUIRE(heartbeat.start(&loop) == 0);
  CHECK(heartbeat.start(&loop) == UV_EALREADY);
  // Unreferenced: with nothing else to do, the loop ends at once.
  CHECK(uv_run(&loop, UV_RUN_DEFAULT) == 0);

  // A referenced timer keeps the loop turning for 200 ms; the heartbeat beats meanwhile.
  uv_timer_t keepAlive;
  REQUIRE(uv_timer_init(&loop, &keepAlive) == 0);
  keepAlive.data = &heartbeat;
  REQUIRE(uv_timer_start(
              &keepAlive,
              [](uv_timer_t* timer) {
                // The last beat was at most one interval (plus scheduling) ago.
                CHECK(static_cast<LoopHeartbeat*>(timer->data)->sinceLastBeat() <
                      std::chrono::milliseconds(150));
              },
              200, 0) == 0);
  CHECK(uv_run(&loop, UV_RUN_DEFAULT) == 0);

  // The loop is not turning now: the silence grows, seen from another thread.
  std::this_thread::sleep_for(std::chrono::milliseconds(120));
  std::chrono::milliseconds silence{};
  std::thread reader([&] { silence = heartbeat.sinceLastBeat(); });
  reader.join();
  CHECK(silence >= std::chrono::milliseconds(100));
  heartbeat.beat();
  CHECK(heartbeat.sinceLastBeat() < std::chrono::milliseconds(100));

  uv_close(reinterpret_cast<uv_handle_t*>(&keepAlive), nullptr);
  heartbeat.stop();
  heartbeat.stop();  // twice is fine
  CHECK(uv_run(&loop, UV_RUN_DEFAULT) == 0);
  CHECK(uv_loop_close(&loop) == 0);
}

TEST_CASE("liveness: a heartbeat never started reports the time since it was made") {
  const LoopHeartbeat heartbeat;
  CHECK(heartbeat.interval() == std::chrono::milliseconds(1'000));
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  CHECK(heartbeat.sinceLastBeat() >= std::chrono::milliseconds(20));
}

TEST_CASE("liveness: a loop torn down by uv_walk closes the heartbeat's timer") {
  uv_loop_t loop;
  REQUIRE(uv_loop_init(&loop) == 0);
  LoopHeartbeat heartbeat;
  REQUIRE(heartbeat.start(&loop) == 0);
  // What a worker does at the end: close every handle still open.
  uv_walk(
      &loop,
      [](uv_handle_t* handle, void*) {
        if (uv_is_closing(handle) == 0) {
          uv_close(handle, nullptr);
        }
      },
      nullptr);
  heartbeat.stop();  // closing already: a no-op
  CHECK(uv_run(&loop, UV_RUN_DEFAULT) == 0);
  CHECK(uv_loop_close(&loop) == 0);
}

}  // namespace certrelay::admin
