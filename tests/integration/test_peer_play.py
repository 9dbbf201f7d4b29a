#!/usr/bin/env python3
"""peercdn-peer, what it plays: the local HLS endpoint and real players' requests, the CDN's answers
(error pages, ignored ranges, a lost segment, retries), download caps, a signed-media origin, and a
swarm playing on without its tracker and half its peers.

The tests are in test_peer_links.py, with the helpers and the shared video they use; this script runs
this half of them, so that the two halves run side by side (one script took 8 minutes, 11 under the
sanitizers, the longest job of the suite)."""
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
import test_peer_links as L  # noqa: E402

if __name__ == "__main__":
    L.S.run([
       L.test_without_a_tracker_the_peer_plays_from_the_cdn_alone,
       L.test_a_segment_no_source_can_deliver_ends_playback_and_redirects_are_followed,
       L.test_a_seeder_tries_a_failed_fetch_again,
       L.test_ffmpeg_decodes_the_whole_video_through_the_local_hls_endpoint,
       L.test_a_signed_media_origin_swarms_with_the_media_query,
       L.test_a_token_renewed_in_the_media_query_file_brings_back_the_cdn_and_the_tracker,
       L.test_a_local_player_asking_out_of_order_or_at_two_renditions_is_answered,
       L.test_what_the_store_let_go_is_fetched_again_and_an_init_after_the_end,
       L.test_a_seeder_with_an_hls_endpoint_answers_what_was_asked_while_it_fetched,
       L.test_a_download_cap_paces_peer_links_and_the_cdn,
       L.test_cdn_error_pages_and_ignored_ranges_are_not_kept_as_segment_bytes,
       L.test_the_local_endpoint_serves_the_subtitles_it_checked,
       L.test_subtitle_requests_share_one_fetch_and_a_stop_answers_them,
       L.test_a_playlist_pointing_outside_the_signed_manifest_is_not_served,
       L.test_a_crlf_master_still_gives_the_pinned_variant,
       L.test_players_that_went_away_do_not_keep_the_endpoint_busy,
       L.test_a_player_is_not_kept_waiting_for_a_copy_the_store_let_go,
       L.test_a_store_smaller_than_the_window_does_not_fetch_in_a_loop,
       L.test_low_caps_lost_tracker_and_half_the_swarm_still_play_without_a_stall])  # the last kills the tracker
