#!/bin/bash
#########################################################
# Uncomment and change the variables below to your need:#
#########################################################
# The fake WebUI's webui-user.sh, sourced by webui.sh like A1111's. Its one setting: no venv by default
# ("-", A1111's own value for "use the python as it is"); set venv_dir in the environment to use one.

# Install directory without trailing slash
#install_dir="/home/$(whoami)"

# python3 executable
#python_cmd="python3"

# python3 venv without trailing slash (A1111's default: venv; "-" disables the venv)
venv_dir="${venv_dir:--}"

# Commandline arguments for webui.py, for example: export COMMANDLINE_ARGS="--medvram --opt-split-attention"
#export COMMANDLINE_ARGS=""

# script to launch to start the app
#export LAUNCH_SCRIPT="launch.py"
