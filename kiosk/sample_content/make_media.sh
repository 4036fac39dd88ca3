#!/usr/bin/env bash
# Makes the sample content's binary files (video, posters, pictures, PDF) once; they are committed.
# Needs ffmpeg with libx264 and drawtext, fonts-noto-cjk, and chromium (for the PDF).
set -euo pipefail
cd "$(dirname "$0")"
FONT=/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc
ff() { ffmpeg -hide_banner -loglevel error -y "$@"; }

# A 10 s 480p H.264 video with a tone, keyframe every second (quick seeking), moov first (quick start).
ff -f lavfi -i "testsrc2=size=854x480:rate=25:duration=10" -f lavfi -i "sine=frequency=330:duration=10:sample_rate=44100" \
  -vf "drawbox=x=0:y=330:w=iw:h=150:color=black@0.6:t=fill,drawtext=fontfile=$FONT:text='科学养猪 · 猪舍通风与清洁':fontcolor=white:fontsize=44:x=(w-text_w)/2:y=350,drawtext=fontfile=$FONT:text='示范片  %{pts\:hms}':fontcolor=yellow:fontsize=32:x=(w-text_w)/2:y=420" \
  -c:v libx264 -profile:v main -pix_fmt yuv420p -preset slow -crf 30 -g 25 -c:a aac -b:a 48k -ac 1 -movflags +faststart \
  pig-farming-video/data/video.mp4
ff -ss 3 -i pig-farming-video/data/video.mp4 -frames:v 1 -vf scale=480:-2 -q:v 5 pig-farming-video/data/poster.jpg

# card NAME COLOUR TEXT SUBTEXT: a 800x450 picture with a caption.
card() {
  ff -f lavfi -i "color=c=$2:size=800x450:duration=1" -frames:v 1 \
    -vf "drawbox=x=40:y=40:w=720:h=370:color=white@0.18:t=fill,drawtext=fontfile=$FONT:text='$3':fontcolor=white:fontsize=72:x=(w-text_w)/2:y=150,drawtext=fontfile=$FONT:text='$4':fontcolor=white:fontsize=36:x=(w-text_w)/2:y=270" \
    -q:v 6 "$1"
}
card corn-spring-sowing/data/corn.jpg "#2e7d32" "玉米春播" "选种 · 整地 · 播种 · 施肥"
card hypertension-care/data/cover.jpg "#c62828" "高血压的日常防护" "少盐 · 多动 · 按时服药"
card henan-opera-pictures/data/01-mulan.jpg "#8e2470" "花木兰" "豫剧经典剧目"
card henan-opera-pictures/data/02-chaoyanggou.jpg "#6a1b9a" "朝阳沟" "豫剧现代戏"
card henan-opera-pictures/data/03-xiangyulian.jpg "#ad1457" "秦香莲" "豫剧传统戏"
card henan-opera-pictures/data/04-yangmen.jpg "#4a148c" "穆桂英挂帅" "豫剧经典剧目"
card child-water-safety/data/1.jpg "#e07b00" "不私自下水游泳" "防溺水 第一条"
card child-water-safety/data/2.jpg "#ef6c00" "不在无大人陪同时玩水" "防溺水 第二条"
card child-water-safety/data/3.jpg "#f57c00" "发现同伴落水要呼救" "防溺水 第三条"

# The PDF: Chromium prints the HTML source with the CJK font embedded.
chromium --headless --no-sandbox --disable-gpu --no-pdf-header-footer \
  --print-to-pdf="$PWD/hypertension-care/data/guide.pdf" "file://$PWD/sources/hypertension-guide.html" 2>/dev/null
